#!/usr/bin/env python3
# up-roles.py LAB: per role of a running lab, "role:processes/ms/minor faults" (utime+stime and
# minflt from /proc/PID/stat, summed). Used by scripts/up-cpu.sh.
import os, sys, collections
lab = sys.argv[1]
hz = os.sysconf('SC_CLK_TCK')
agg = collections.defaultdict(lambda: [0, 0, 0])
for pid in os.listdir('/proc'):
    if not pid.isdigit(): continue
    try:
        cmd = open(f'/proc/{pid}/cmdline','rb').read().split(b'\0')
        if len(cmd) < 3 or cmd[1] != b'agent': continue
        if b'--lab' not in cmd or cmd[cmd.index(b'--lab')+1].decode() != lab: continue
        st = open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()
    except Exception: continue
    role = cmd[2].decode()
    a = agg[role]
    a[0] += 1; a[1] += (int(st[11]) + int(st[12])) * 1000 // hz; a[2] += int(st[7])
print(' '.join(f'{k}:{v[0]}/{v[1]}ms/{v[2]}f' for k, v in sorted(agg.items())))
