"""Everything that knows ComfyUI: the adapter (its only importer), the nodes, prompt ordering
and resuming a parked run."""
