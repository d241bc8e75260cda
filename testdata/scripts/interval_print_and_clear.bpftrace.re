Attaching 2 probes\.\.\.\n(@[ck]\[\d+\]: \d+\n|\n)*end ([5-9]|[1-9]\d+)\n(@[ckn](\[\d+\])?: \d+\n|\n)*
