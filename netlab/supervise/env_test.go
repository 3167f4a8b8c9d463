package supervise

import (
	"slices"
	"testing"
)

// TestWithGODEBUG: the ingress agents' runtime setting is added to the environment's
// GODEBUG, beside the user's settings, and never over a setting of the same name.
func TestWithGODEBUG(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + IngressGODEBUG}},
		{"empty GODEBUG", []string{"GODEBUG=", "PATH=/bin"}, []string{"GODEBUG=" + IngressGODEBUG, "PATH=/bin"}},
		{"other settings kept", []string{"GODEBUG=gctrace=1,madvdontneed=1"}, []string{"GODEBUG=gctrace=1,madvdontneed=1," + IngressGODEBUG}},
		{"the user's schedtrace stands", []string{"GODEBUG=gctrace=1,schedtrace=1000"}, []string{"GODEBUG=gctrace=1,schedtrace=1000"}},
		{"the user's schedtrace=0 turns it off", []string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}},
		// The runtime does not trim: " schedtrace=1000" sets nothing, so ours is added.
		{"a name with a space is another", []string{"GODEBUG=gctrace=1, schedtrace=1000"}, []string{"GODEBUG=gctrace=1, schedtrace=1000," + IngressGODEBUG}},
		// os/exec keeps the last of duplicate entries: that is the one the agent sees.
		{"the last of two GODEBUG entries", []string{"GODEBUG=a=1", "GODEBUG=b=1"}, []string{"GODEBUG=a=1", "GODEBUG=b=1," + IngressGODEBUG}},
		{"a name that only starts alike is another", []string{"GODEBUG=schedtracex=1"}, []string{"GODEBUG=schedtracex=1," + IngressGODEBUG}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.env)
			got := WithGODEBUG(tc.env, IngressGODEBUG)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("WithGODEBUG(%q) = %q, want %q", tc.env, got, tc.want)
			}
			if !slices.Equal(tc.env, before) {
				t.Fatalf("WithGODEBUG changed its argument: %q, was %q", tc.env, before)
			}
		})
	}
}
