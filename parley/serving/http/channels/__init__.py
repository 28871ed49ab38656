"""The channels users talk through: REST and socket.io, chosen by credentials.yml."""
