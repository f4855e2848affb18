"""Real-time streams: cursors, framing, and the SSE and WebSocket connections."""
