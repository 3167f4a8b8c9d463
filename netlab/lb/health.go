package lb

import "time"

// Health is one real server's health state, keepalived-style: it goes up after Rise
// consecutive successful checks and down after Fall consecutive failed ones. A check
// that agrees with the current state only resets the opposite run. It is not safe for
// concurrent use; the Checker serializes access.
type Health struct {
	rise, fall  int
	up          bool
	okRun       int
	failRun     int
	since       time.Time // time of the last transition (zero: none yet)
	lastCheck   time.Time
	transitions int
	// firstDecides: the first result sets the state at once (see NewHealthFirstDecides).
	firstDecides bool
}

// NewHealth returns a state machine that starts down (keepalived's alpha mode) or, with
// startUp, up. rise and fall below 1 count as 1.
func NewHealth(rise, fall int, startUp bool) *Health {
	return &Health{rise: max(rise, 1), fall: max(fall, 1), up: startUp}
}

// NewHealthFirstDecides returns a state machine whose first check result sets its state at
// once; rise and fall apply from then on. A freshly started checker so knows within one
// check which real servers serve, without sending traffic to a dead one (keepalived's
// default) or waiting rise intervals for live ones (its alpha mode).
func NewHealthFirstDecides(rise, fall int) *Health {
	return &Health{rise: max(rise, 1), fall: max(fall, 1), firstDecides: true}
}

// Observe records one check result taken at time at and reports whether it changed the
// state.
func (h *Health) Observe(ok bool, at time.Time) (transition bool) {
	h.lastCheck = at
	if h.firstDecides {
		h.firstDecides = false
		if ok {
			h.okRun = 1
		} else {
			h.failRun = 1
		}
		if ok != h.up {
			h.up = ok
			h.since = at
			h.transitions++
			return true
		}
		return false
	}
	if ok {
		h.okRun++
		h.failRun = 0
		if !h.up && h.okRun >= h.rise {
			h.up = true
			transition = true
		}
	} else {
		h.failRun++
		h.okRun = 0
		if h.up && h.failRun >= h.fall {
			h.up = false
			transition = true
		}
	}
	if transition {
		h.since = at
		h.transitions++
	}
	return transition
}

// Up reports the current state.
func (h *Health) Up() bool { return h.up }

// HealthStatus is a snapshot of a Health.
type HealthStatus struct {
	Up bool `json:"up"`
	// Since is when the state last changed; zero if it never did.
	Since     time.Time `json:"since,omitzero"`
	LastCheck time.Time `json:"lastCheck,omitzero"`
	// OKRun and FailRun are the current runs of consecutive successes and failures.
	OKRun       int `json:"okRun"`
	FailRun     int `json:"failRun"`
	Transitions int `json:"transitions"`
}

// Status returns a snapshot.
func (h *Health) Status() HealthStatus {
	return HealthStatus{
		Up: h.up, Since: h.since, LastCheck: h.lastCheck,
		OKRun: h.okRun, FailRun: h.failRun, Transitions: h.transitions,
	}
}
