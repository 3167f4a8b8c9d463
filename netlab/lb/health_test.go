package lb

import (
	"strings"
	"testing"
	"time"
)

// fakeClock hands out times one second apart.
type fakeClock struct{ t time.Time }

func (c *fakeClock) next() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

func TestHealthStateMachine(t *testing.T) {
	// Each result string is a sequence of checks: '+' ok, '-' failed. want marks the
	// checks that cause a transition: 'U' up, 'D' down, '.' none.
	cases := []struct {
		name       string
		rise, fall int
		startUp    bool
		results    string
		want       string
	}{
		{"starts down, rises after 2", 2, 2, false, "++++", ".U.."},
		{"falls after 2", 2, 2, false, "++--++", ".U.D.U"},
		{"flapping never reaches rise or fall", 3, 3, false, "+++-+-+--+-", "..U........"},
		{"a success resets the fail run", 2, 3, false, "++--+--+---", ".U........D"},
		{"starts up", 2, 2, true, "--++", ".D.U"},
		{"rise/fall 1 follows every result", 1, 1, false, "+-+-", "UDUD"},
		{"zero counts as 1", 0, 0, true, "-+", "DU"},
		{"stays down while failing", 2, 2, false, "----", "...."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			h := NewHealth(c.rise, c.fall, c.startUp)
			var got strings.Builder
			var lastChange time.Time
			transitions := 0
			for _, r := range c.results {
				at := clock.next()
				if h.Observe(r == '+', at) {
					transitions++
					lastChange = at
					if h.Up() {
						got.WriteByte('U')
					} else {
						got.WriteByte('D')
					}
				} else {
					got.WriteByte('.')
				}
				if s := h.Status(); s.LastCheck != at {
					t.Fatalf("LastCheck %v, want %v", s.LastCheck, at)
				}
			}
			if got.String() != c.want {
				t.Fatalf("results %s: transitions %s, want %s", c.results, got.String(), c.want)
			}
			s := h.Status()
			if s.Transitions != transitions || !s.Since.Equal(lastChange) {
				t.Errorf("status %+v: want %d transitions, last at %v", s, transitions, lastChange)
			}
		})
	}
}

func TestHealthRuns(t *testing.T) {
	h := NewHealth(3, 2, false)
	at := time.Unix(0, 0)
	h.Observe(true, at)
	h.Observe(true, at)
	if s := h.Status(); s.OKRun != 2 || s.FailRun != 0 || s.Up {
		t.Fatalf("after two successes: %+v", s)
	}
	h.Observe(false, at)
	if s := h.Status(); s.OKRun != 0 || s.FailRun != 1 || s.Up {
		t.Fatalf("after a failure: %+v", s)
	}
}

func TestHealthFirstResultDecides(t *testing.T) {
	t0 := time.Unix(1000, 0)
	up := NewHealthFirstDecides(3, 2)
	if !up.Observe(true, t0) || !up.Up() {
		t.Fatal("a first good check must bring the probe up at once")
	}
	if up.Observe(false, t0.Add(time.Second)) || !up.Up() {
		t.Fatal("after the first check, fall applies: one failure is not enough")
	}
	if !up.Observe(false, t0.Add(2*time.Second)) || up.Up() {
		t.Fatal("two failures (fall 2) must bring it down")
	}
	down := NewHealthFirstDecides(3, 2)
	if down.Observe(false, t0) || down.Up() {
		t.Fatal("a first failed check keeps the probe down, with no transition")
	}
	for i := 1; i < 3; i++ {
		if down.Observe(true, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("rise 3: up after %d good checks", i)
		}
	}
	if !down.Observe(true, t0.Add(3*time.Second)) || !down.Up() {
		t.Fatal("rise 3: the third good check brings it up")
	}
}
