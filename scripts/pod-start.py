#!/usr/bin/env python3
# pod-start.py N [ENV:]BIN...: one pod's start alone, builds alternated: BIN (a netlab-pod)
# is spawned N times in the namespace nl-agstx-p (make it first: ip netns add nl-agstx-p),
# with no capabilities and NoNewPrivs (as netlab starts a pod) and a readiness pipe, and
# SIGKILLed once it writes READY; prints its CPU (rusage), minor faults and threads at
# READY. ENV (comma-separated NAME=VALUE) is added to its environment; SLACK=NS forks it
# with that timer slack. docs/performance.md, "Bring-up, fourteenth stop".
import os, sys, subprocess, statistics, signal, time
# podstart.py N BIN... : start each BIN's netlab-pod in nl-agstx-p N times alternated; CPU (rusage) from exec to READY + kill
n = int(sys.argv[1]); bins = sys.argv[2:]
res = {b: [] for b in bins}
env0 = dict(os.environ)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
nsfd = os.open('/run/netns/nl-agstx-p', os.O_RDONLY)
last = int(open('/proc/sys/kernel/cap_last_cap').read())
def confine():
    global libc
    assert libc.setns(nsfd, 0x40000000) == 0
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    for c in range(last + 1):
        libc.prctl(24, c, 0, 0, 0)  # PR_CAPBSET_DROP
    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    assert libc.capset(hdr, data) == 0
confine()
for i in range(n):
    for b in bins:
        r, w = os.pipe()
        env = dict(env0, NETLAB_READY_FD=str(w))
        path = b
        if ':' in b:
            e, path = b.split(':', 1)
            for kv in e.split(','):
                k, v = kv.split('=', 1); env[k] = v
        slack = int(env.pop('SLACK', '0'))
        libc.prctl(29, slack, 0, 0, 0)
        p = subprocess.Popen([path, 'agent', 'pod', '--lab', 'agstx', '--pod', 'p', '--node', 'n', '--ip', '10.0.0.1', '--port', '8080/TCP'],
                             pass_fds=[w],  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        libc.prctl(29, 0, 0, 0, 0)
        line = os.read(r, 100)
        os.close(r)
        # the pod is the exec'd child (ip netns exec and setpriv exec in place)
        thr = len(os.listdir(f'/proc/{p.pid}/task'))
        os.kill(p.pid, signal.SIGKILL)
        _, st, ru = os.wait4(p.pid, 0)
        res[b].append(((ru.ru_utime + ru.ru_stime) * 1000, ru.ru_minflt, thr, line))
for b in bins:
    v = res[b]
    cpu = [x[0] for x in v]; fl = [x[1] for x in v]; th = [x[2] for x in v]
    print(f'{b}: cpu {statistics.median(cpu):.2f} ms ({min(cpu):.2f}-{max(cpu):.2f}) faults {statistics.median(fl)} threads {statistics.median(th)} {v[0][3]!r}')
