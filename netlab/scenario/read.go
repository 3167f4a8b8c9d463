package scenario

import (
	"fmt"
	"io"
	"os"
	"sync"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxFileSize caps one scenario file (or stdin): a lab's scenario is a few kilobytes, and
// everything read ends up in the plan every agent loads.
const MaxFileSize = 8 << 20

// Stdin is the file name that reads the scenario from standard input, as kubectl's -f -.
const Stdin = "-"

// StdinName is how problems name standard input.
const StdinName = "<stdin>"

var stdinOnce struct {
	sync.Mutex
	read bool
	data []byte
	err  error
}

// ReadFile reads one scenario file: "-" is standard input (read once; later calls get
// the same bytes). Anything that is not a regular file (a FIFO, a device such as
// /dev/zero, a directory) is refused before reading, and so is a file larger than
// MaxFileSize.
func ReadFile(path string) ([]byte, error) {
	if path == Stdin {
		stdinOnce.Lock()
		defer stdinOnce.Unlock()
		if !stdinOnce.read {
			stdinOnce.read = true
			stdinOnce.data, stdinOnce.err = readCapped(os.Stdin, StdinName)
		}
		return stdinOnce.data, stdinOnce.err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read scenario %s: not a regular file (%s); give a file, or - to read standard input", path, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("read scenario %s: %d bytes, more than the limit of %d (8 MiB)", path, fi.Size(), MaxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	defer f.Close()
	return readCapped(f, path)
}

func readCapped(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", name, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("read scenario %s: more than the limit of %d bytes (8 MiB)", name, MaxFileSize)
	}
	return b, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	default:
		return m.Type().String()
	}
}

// objectMeta is the metadata scenario objects carry, with a Deployment's pod template's.
type objectMeta struct {
	Metadata metaFields `json:"metadata"`
	Spec     struct {
		Template struct {
			Metadata metaFields `json:"metadata"`
		} `json:"template"`
	} `json:"spec"`
}

type metaFields struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// metaProblems checks labels and annotations as the Kubernetes API server does: label
// keys and values by their syntax and lengths (63 characters, a 253-character DNS prefix),
// annotation keys by theirs and all of an object's annotations together at most 256 KiB.
func metaProblems(m objectMeta) []string {
	var errs field.ErrorList
	check := func(mf metaFields, path *field.Path) {
		errs = append(errs, metav1validation.ValidateLabels(mf.Labels, path.Child("labels"))...)
		errs = append(errs, apivalidation.ValidateAnnotations(mf.Annotations, path.Child("annotations"))...)
	}
	check(m.Metadata, field.NewPath("metadata"))
	check(m.Spec.Template.Metadata, field.NewPath("spec", "template", "metadata"))
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		msg := e.Error()
		if len(msg) > 300 { // a 50 MB value is not echoed back
			msg = msg[:300] + "..."
		}
		out = append(out, msg)
	}
	return out
}
