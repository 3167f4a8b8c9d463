package ingressagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingressagent"
)

// workerEnv, when set in the environment, makes this test binary an ingress worker (the
// JSON of a testWorker): a node's ingress in a test starts its workers 2..N so, as the
// agent starts netlab-agent with --worker N.
const workerEnv = "NETLAB_TEST_INGRESS_WORKER"

// testWorker is what a test's worker is started with.
type testWorker struct {
	Lab, Node, Dir string
	Worker         int
}

func TestMain(m *testing.M) {
	if v := os.Getenv(workerEnv); v != "" {
		os.Exit(runTestWorker(v))
	}
	os.Exit(m.Run())
}

func runTestWorker(v string) int {
	var w testWorker
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctl, err := net.FileConn(os.NewFile(3, "ingress-control"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := ingressagent.RunIngressWorker(ctx, ingressagent.IngressConfig{Lab: w.Lab, Node: w.Node, Dir: w.Dir}, w.Worker, ctl, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Keep the testing package's flags parsed for the worker too (it is started with
// -test.run so that it would run no test even without workerEnv).
var _ = testing.Testing
