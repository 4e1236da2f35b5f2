"""The API's groups of operations, bound to a client: ``client.tasks``, ``client.files``, ..."""
