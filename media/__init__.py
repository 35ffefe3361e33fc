"""Media adapters (WebRTC peers, encoded-frame relay, recording, ffmpeg jobs); never imports server."""
