"""Event brokers: every event of every conversation sent to another service (endpoints.yml's
``event_broker``) — SQL, RabbitMQ (pika), or a user's own class."""
