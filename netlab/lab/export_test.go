package lab

// SetPodsInFlight sets the bound on pods started and not yet ready, for a test; the
// returned func restores it.
func SetPodsInFlight(n int) (restore func()) {
	old := podsInFlight
	podsInFlight = n
	return func() { podsInFlight = old }
}
