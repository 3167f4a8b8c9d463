// Package integration holds the root integration tests of the cluster DNS in a real lab:
// the DNS pods behind kube-dns, queried from pods over UDP and TCP, the resolv.conf files
// and what a client sees. It has no code of its own; unlike its parent package it is not
// pure (its tests start labs).
package integration
