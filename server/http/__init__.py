"""HTTP adapter: the route table, thin handlers, the API contract and its error answers."""
