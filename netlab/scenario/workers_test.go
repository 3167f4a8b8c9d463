package scenario

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// spec.ingress.workers as the plan carries it: 1 and unset alike (a file that adds the
// default changes nothing on apply), the number, or auto.
func TestIngressWorkersInThePlan(t *testing.T) {
	one, two, auto := intstr.FromInt32(1), intstr.FromInt32(2), intstr.FromString(IngressWorkersAuto)
	for _, tc := range []struct {
		w    *intstr.IntOrString
		want string
	}{{nil, ""}, {&one, ""}, {&two, "2"}, {&auto, "auto"}} {
		if got := (IngressSpec{Workers: tc.w}).IngressWorkers(); got != tc.want {
			t.Errorf("workers %v: %q, want %q", tc.w, got, tc.want)
		}
	}
}
