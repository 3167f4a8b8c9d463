package agent_test

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/labtest"
)

// The integration tests bring labs up whose agents this test binary runs.
func TestMain(m *testing.M) { labtest.Main(m) }
