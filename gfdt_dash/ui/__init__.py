"""The Panel layer: parameter mirrors, the job pool and its worker processes, the pacing of heavy
UI work on the server's event loop, the generic system tab (its controller, which runs the core's
pipeline stages, and its layout), the views and the scans."""
