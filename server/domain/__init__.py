"""Pure, synchronous shop rules on dataclasses: no aiohttp, SQLAlchemy or asyncio here."""
