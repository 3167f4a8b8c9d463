// Package lessons holds the test that proves every lesson in scenarios/: each scenario is
// brought up under a unique lab name, `netlab check` must pass (the lab's health and the
// scenario's own checks), and the lab goes down, also when the test fails.
package lessons
