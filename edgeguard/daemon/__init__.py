"""The daemon: one asyncio event loop, a registry of components, sd_notify, control socket."""
