// Package rundir owns a lab's runtime directory, /run/netlab/<lab>: the name of every
// file in it, the lock that serialises up and down, the one atomic file writer, and the
// readers of what the agents publish there (the plan, the endpoints, each node's
// kube-proxy sync status, the LB state, the lab CA). It also holds the pod readiness
// probe that status, check and the endpoints controller share.
//
// Both sides of a lab use it: package lab, which creates the directory and starts the
// agents, and package agent, whose processes read and write it. Neither rebuilds a path
// itself.
//
// Layout (Dir methods in brackets):
//
//	/run/netlab/                      Root, mode 0700
//	  .<lab>.lock                     LockPath: flock held by up, down and pod start
//	  .created-etc-netns              EtcNetnsMark: netlab made /etc/netns
//	  <lab>/                          ForLab(lab).Path()
//	    plan.json                     [Plan] written by up, read by every agent
//	    endpoints.json                [Endpoints] written by the controller
//	    kube-proxy/<node>.json        [SyncStatus] each node's last kube-proxy sync
//	    ingress/<node>.json           [IngressLoaded] the plan each node's ingress serves
//	    dns/<pod>.json                [DNSLoaded] the plan and endpoints each DNS pod answers from
//	    lb-state.json                 [LBState] the lb agent's health and rules
//	    ca/ca.crt, ca/ca.key, ca/.lock [CA] the lab CA, made by the first ingress agent
//	    leaving/<pod>                 [Leaving] the pod is being terminated gracefully
//	    <role>-<name>.pid             [PIDFile] agents outside the lab's namespaces
//	    pids/<role>-<name>.json        [PIDFile] each agent's record (pid, start time, restarts)
//	    pids/pods.wave                 [PodWave] the records of the pods up started together
//	/run/netlab-logs/<lab>/            LogRoot, [Logs]: kept after down until the next up
//	    <role>-<name>.log             [Log] every agent's output
//	    scenario.yaml                 [Scenario] the scenario up was given
//	/etc/netns/nl-<lab>-<object>/     EtcNetns: hosts and resolv.conf for `ip netns exec`
package rundir
