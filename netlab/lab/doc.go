// Package lab runs a Plan against the kernel: Up builds a lab in ordered steps and rolls
// back on failure, Down finds every object of a lab by its name (namespaces nl-<lab>-*, the
// processes living in them, /run/netlab/<lab>, /etc/netns/nl-<lab>-*) and removes it, and
// Status reads the live state back.
package lab
