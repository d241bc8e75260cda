#!/usr/bin/env python3
# Writes printf_random.bt: printf calls with random conversions of the kinds
# bpftrace 0.17 accepts ('-' flag, widths with or without a leading 0,
# precisions, every length modifier), fed interesting values. capture.sh
# then records what bpftrace prints for it.
import random

rnd = random.Random(17)
ints = [0, 1, -1, 7, -7, 42, -42, 127, 128, 255, 256, -129, 65535, 65536, -32769,
        2147483647, 2147483648, -2147483648, -2147483649, 4294967295, 4294967296,
        9223372036854775807, -9223372036854775807, 1234567890123, -987654321]
strs = ["", "a", "abc", "hello world", "0123456789abcdef", "x|y", "tab\\tch"]
lengths = ["", "hh", "h", "l", "ll", "j", "z", "t"]
convs = ["d", "u", "o", "x", "X", "p"]
texts = ["", " ", "|", "ab", "%% ", "[", "] "]


def spec():
    s = "%"
    if rnd.random() < 0.3:
        s += "-"
    r = rnd.random()
    if r < 0.3:
        s += str(rnd.randint(1, 20))
    elif r < 0.5:
        s += "0" + str(rnd.randint(1, 20))
    if rnd.random() < 0.35:
        s += "." + str(rnd.randint(0, 12))
    kind = rnd.random()
    if kind < 0.15:
        return s + "s", '"%s"' % rnd.choice(strs)
    if kind < 0.25:
        return s + "c", str(rnd.randint(32, 126))
    return s + rnd.choice(lengths) + rnd.choice(convs), str(rnd.choice(ints))


lines = []
for _ in range(150):
    fmt, args = "", []
    for _ in range(rnd.randint(1, 4)):
        sp, arg = spec()
        fmt += rnd.choice(texts) + sp
        args.append(arg)
    fmt += rnd.choice(["", "|", " end"]) + "\\n"
    lines.append('  printf("%s", %s);' % (fmt, ", ".join(args)))

with open("printf_random.bt", "w") as f:
    f.write("BEGIN {\n" + "\n".join(lines) + "\n  exit();\n}\n")
