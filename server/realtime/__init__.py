"""Socket.IO live room: validates events and calls services; holds no business rules."""
