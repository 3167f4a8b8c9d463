#!/usr/bin/env bash
# up-threads.sh LAB: per role of a running lab, the CPU of each thread index (ms, from
# /proc/PID/task/*/schedstat, averaged over the role's processes; thread 2 of a Go process
# is the runtime's sysmon). docs/performance.md, "Bring-up, fourteenth stop".
# threads.sh LAB: per role, the sum of each thread index's CPU ms (schedstat) over the role's processes
for pid in $(pgrep -f "agent [a-z-]+ --lab $1( |$)"); do r=$(tr '\0' ' ' </proc/$pid/cmdline | awk '{print $3}'); echo -n "$r"; for t in $(ls /proc/$pid/task | sort -n); do awk '{printf " %.2f", $1/1e6}' /proc/$pid/task/$t/schedstat; done; echo; done | awk '{r=$1; n[r]++; for(i=2;i<=NF;i++){s[r,i]+=$i; if(NF>m[r])m[r]=NF}; c[r]+=NF-1} END{for(r in n){printf "%-11s n=%2d thr/proc=%.1f ms/proc:", r, n[r], c[r]/n[r]; for(i=2;i<=m[r];i++) printf " %5.1f", s[r,i]/n[r]; print ""}}'
