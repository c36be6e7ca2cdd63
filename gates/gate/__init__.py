"""One gate run, free of ComfyUI: the run itself, the waiter, parking and per-image split."""
