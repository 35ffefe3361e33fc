"""Showroom: self-hosted live shopping and shoppable video server."""
