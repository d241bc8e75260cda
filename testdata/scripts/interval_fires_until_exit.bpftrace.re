Attaching 1 probe\.\.\.\n\n\n@ticks: ([4-9]|[1-9][0-9]+)\n
