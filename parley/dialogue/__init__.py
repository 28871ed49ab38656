"""Dialogue management: training trackers from stories and rules, and the policies that
predict the assistant's next action."""
