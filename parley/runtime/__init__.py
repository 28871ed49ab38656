"""The conversation at run time: the action loop, actions, responses, forms, stores
and event brokers.

It sits above model training and below serving: it takes a loaded model and never the
serving layer's Agent, so HTTP, channels and the shell all drive the same processor.
"""
