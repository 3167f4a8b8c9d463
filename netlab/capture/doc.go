// Package capture watches packets inside lab namespaces: one AF_PACKET socket per
// namespace, opened through kernel.Do (the only setns), with a classic BPF filter attached
// in the kernel so that traffic a capture does not want is never copied to it. It decodes
// what it reads into Packet records (addresses as seen on that interface, VXLAN unwrapped)
// and writes pcapng with one interface description block per interface, named
// `<object>/<ifname>`.
//
// It never opens a socket in the root namespace and never changes anything: a packet
// socket only reads.
package capture
