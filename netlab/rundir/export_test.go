package rundir

// SetBigDecode sets the size from which a view's parts are decoded with go-json, and
// returns the function that sets it back.
func SetBigDecode(n int) (restore func()) {
	old := bigDecode
	bigDecode = n
	return func() { bigDecode = old }
}
