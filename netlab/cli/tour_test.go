package cli_test

// docs/tour.md is its own test. Every command of the tour is a `$ ` line in a code block;
// an HTML comment after the block (invisible once rendered) says, command by command, which
// key lines its output must show:
//
//	<!-- tour
//	$ cat /etc/hosts                  a part of the command it is about, in the block's order
//	203\.0\.113\.100\s+app\.example    a regular expression some output line must match
//	$ curl -sS -m 2
//	exit: 7                           the exit status (default 0)
//	Failed to connect to 10\.244\.1\.2
//	-->
//
// Directives: `exit: N`; `retry: D` (run again until it holds, for D: a state the lab
// reaches by itself, e.g. endpoints after a pod dies); `bound: D` (a command that only
// stops when told, e.g. --follow: stopped with SIGTERM after D, as Ctrl-C would); `ready: RE`
// (a command run in the background with `&`: the next command waits until its output
// matches RE, e.g. tcpdump's "listening on"). A background command is checked when
// `wait` or `kill %N` ends it, against the lines the tour shows after it.
//
// TestTourAnnotated (no root) holds the text together: every command annotated, every key
// line also shown by the tour itself, every command the prose names also run.
// TestIntegrationTour runs every command in order against real labs under unique names,
// as root, and fails when an output no longer shows its key lines.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/cli"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/scenario"
)

const tourPath = "../../docs/tour.md"

// tourCmd is one `$ ` line of the tour, what the tour shows after it and what it must show.
type tourCmd struct {
	line   int      // in tour.md, from 1
	text   string   // as written, without "$ "
	shown  []string // the output lines the tour shows after it
	expect tourExpect
}

type tourExpect struct {
	header   string // the annotation's "$ ..." line, a part of text
	patterns []*regexp.Regexp
	exit     int
	retry    time.Duration
	bound    time.Duration
	ready    *regexp.Regexp
}

type tourBlock struct {
	line int
	cmds []*tourCmd
}

// background reports whether the command is run with a trailing &.
func (c *tourCmd) background() bool { return strings.HasSuffix(strings.TrimSpace(c.text), "&") }

// parseTour reads the tour's code blocks and their annotations. It returns every problem
// with its line.
func parseTour(text string) ([]*tourBlock, []string) {
	lines := strings.Split(text, "\n")
	var blocks []*tourBlock
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("docs/tour.md:%d: %s", line, fmt.Sprintf(format, args...)))
	}
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	var pending *tourBlock // a block with commands waiting for its annotation
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "<!-- tour"):
			start := i
			var body []string
			if rest := strings.TrimSpace(strings.TrimPrefix(trimmed, "<!-- tour")); rest != "" && rest != "-->" {
				bad(i+1, "put the annotation's lines below <!-- tour")
			}
			for !strings.Contains(lines[i], "-->") {
				i++
				if i == len(lines) {
					bad(start+1, "annotation never closed with -->")
					return blocks, problems
				}
				if !strings.Contains(lines[i], "-->") {
					body = append(body, strings.TrimSpace(lines[i]))
				}
			}
			if pending == nil {
				bad(start+1, "annotation follows no code block with $ commands")
				continue
			}
			annotate(pending, start+1, body, bad)
			pending = nil
		case indent(l) >= 4 && trimmed != "" && (i == 0 || strings.TrimSpace(lines[i-1]) == ""):
			if pending != nil {
				bad(pending.line, "code block with $ commands has no <!-- tour annotation after it")
				pending = nil
			}
			ind := indent(l)
			b := &tourBlock{line: i + 1}
			var cur *tourCmd
			for ; i < len(lines) && (strings.TrimSpace(lines[i]) == "" || indent(lines[i]) >= ind); i++ {
				code := strings.TrimRight(lines[i], " ")
				if len(code) >= ind {
					code = code[ind:]
				} else {
					code = ""
				}
				if cmd, ok := strings.CutPrefix(code, "$ "); ok {
					cur = &tourCmd{line: i + 1, text: cmd}
					b.cmds = append(b.cmds, cur)
				} else if cur != nil {
					cur.shown = append(cur.shown, code)
				} else if looksLikeCommand(code) {
					bad(i+1, "%q: a command without its $ prompt, which the tour test would not run", code)
				}
			}
			i--
			for _, c := range b.cmds {
				for len(c.shown) > 0 && c.shown[len(c.shown)-1] == "" {
					c.shown = c.shown[:len(c.shown)-1]
				}
			}
			if len(b.cmds) > 0 {
				blocks = append(blocks, b)
				pending = b
			}
		}
	}
	if pending != nil {
		bad(pending.line, "code block with $ commands has no <!-- tour annotation after it")
	}
	return blocks, problems
}

func looksLikeCommand(s string) bool {
	for _, p := range []string{"sudo ", "netlab ", "bin/netlab ", "ip netns "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

var directive = regexp.MustCompile(`^(exit|retry|bound|ready):\s*(.*)$`)

// annotate gives each command of b its expectations from an annotation's body.
func annotate(b *tourBlock, line int, body []string, bad func(int, string, ...any)) {
	var groups []*tourExpect
	for n, l := range body {
		at := line + 1 + n
		if l == "" {
			continue
		}
		if h, ok := strings.CutPrefix(l, "$ "); ok {
			groups = append(groups, &tourExpect{header: strings.TrimSpace(h)})
			continue
		}
		if len(groups) == 0 {
			bad(at, "%q comes before the first $ line of the annotation", l)
			continue
		}
		g := groups[len(groups)-1]
		if m := directive.FindStringSubmatch(l); m != nil {
			var err error
			switch m[1] {
			case "exit":
				g.exit, err = strconv.Atoi(m[2])
			case "retry":
				g.retry, err = time.ParseDuration(m[2])
			case "bound":
				g.bound, err = time.ParseDuration(m[2])
			case "ready":
				g.ready, err = regexp.Compile(m[2])
			}
			if err != nil {
				bad(at, "%s: %v", m[1], err)
			}
			continue
		}
		re, err := regexp.Compile(l)
		if err != nil {
			bad(at, "not a regular expression: %v", err)
			continue
		}
		g.patterns = append(g.patterns, re)
	}
	if len(groups) != len(b.cmds) {
		bad(line, "the annotation has %d $ lines for the %d commands of the block at line %d", len(groups), len(b.cmds), b.line)
		return
	}
	for i, g := range groups {
		c := b.cmds[i]
		if g.header == "" || !strings.Contains(c.text, g.header) {
			bad(line, "$ line %d (%q) is not a part of command %d of the block (%q, line %d)", i+1, g.header, i+1, c.text, c.line)
		}
		c.expect = *g
	}
}

// shownFor is what the tour shows as the command's output: for a background command, all
// the block's output after it (it prints while the next commands run).
func shownFor(b *tourBlock, i int) []string {
	if !b.cmds[i].background() {
		return b.cmds[i].shown
	}
	var out []string
	for _, c := range b.cmds[i:] {
		out = append(out, c.shown...)
	}
	return out
}

// missing returns the patterns no line of out matches.
func missing(patterns []*regexp.Regexp, out []string) []string {
	var miss []string
	for _, re := range patterns {
		found := false
		for _, l := range out {
			if re.MatchString(l) {
				found = true
				break
			}
		}
		if !found {
			miss = append(miss, re.String())
		}
	}
	return miss
}

func readTour(t *testing.T) []*tourBlock {
	t.Helper()
	text, err := os.ReadFile(tourPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks, problems := parseTour(string(text))
	for _, p := range problems {
		t.Error(p)
	}
	if t.Failed() {
		t.FailNow()
	}
	return blocks
}

var inlineSpan = regexp.MustCompile("`([^`]+)`")

// The tour's text holds together: every command annotated, every key line one the tour
// itself shows, and every command line the prose gives (`sudo ...`) run by a block.
func TestTourAnnotated(t *testing.T) {
	blocks := readTour(t)
	var all []string
	n := 0
	for _, b := range blocks {
		for i, c := range b.cmds {
			n++
			all = append(all, normalizeCommand(c.text))
			if miss := missing(c.expect.patterns, shownFor(b, i)); len(miss) > 0 {
				t.Errorf("docs/tour.md:%d: %s: the tour does not show what its annotation asserts: %q", c.line, c.text, miss)
			}
			if c.expect.ready != nil && !c.background() {
				t.Errorf("docs/tour.md:%d: ready: is for a command run in the background (&)", c.line)
			}
		}
	}
	if n < 25 {
		t.Errorf("only %d commands found in the tour", n)
	}
	// Commands named in the prose are the blocks' own, so they run too.
	text, _ := os.ReadFile(tourPath)
	for ln, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "    ") {
			continue
		}
		for _, m := range inlineSpan.FindAllStringSubmatch(l, -1) {
			span := m[1]
			if !strings.HasPrefix(span, "sudo ") {
				continue // a verb's name (netlab check), not a command line to type
			}
			span = normalizeCommand(span)
			found := false
			for _, c := range all {
				found = found || strings.Contains(c, span)
			}
			if !found {
				t.Errorf("docs/tour.md:%d: `%s` is in the prose but no block runs it", ln+1, m[1])
			}
		}
	}
	t.Logf("%d commands in %d blocks", n, len(blocks))
}

// normalizeCommand writes a command as the prose may name it: without sudo, netlab for bin/netlab.
func normalizeCommand(s string) string {
	s = strings.ReplaceAll(s, "sudo ", "")
	return strings.ReplaceAll(s, "bin/netlab ", "netlab ")
}

// tourRun runs the tour's commands as a reader would, against labs under unique names.
type tourRun struct {
	t    *testing.T
	dir  string            // the working directory: bin/netlab and scenarios/ as in the checkout
	root string            // the checkout
	labs map[string]string // the tour's lab names → this run's
	cur  string            // the lab commands find by themselves (the last one brought up)
	jobs []*tourJob
}

type tourJob struct {
	cmd   *tourCmd
	shown []string
	proc  *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	err   error
}

var (
	upCommand = regexp.MustCompile(`\bnetlab up\b`)
	nameFlag  = regexp.MustCompile(`--name ([a-z0-9]+)`)
	fileFlag  = regexp.MustCompile(`-f (\S+)`)
	nsName    = regexp.MustCompile(`\bnl-([a-z0-9]+)-`)
	jobKill   = regexp.MustCompile(`^kill %(\d+)$`)
)

// labOf is the lab an `up` command brings up, in the tour's names: --name, else the file's
// Lab name, else demo.
func (r *tourRun) labOf(text string) string {
	if m := nameFlag.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	if m := fileFlag.FindStringSubmatch(text); m != nil {
		s, err := scenario.Load([]string{filepath.Join(r.root, m[1])})
		if err != nil {
			r.t.Fatalf("%s: %v", text, err)
		}
		if s.Lab.Metadata.Name != "" {
			return s.Lab.Metadata.Name
		}
	}
	return "demo"
}

// rewrite turns a tour command into this run's: no sudo (the test is root, and sudo would
// drop NETLAB_LAB), this run's lab names, a private /tmp.
func (r *tourRun) rewrite(text string) string {
	text = strings.TrimSuffix(strings.TrimSpace(text), "&")
	text = regexp.MustCompile(`\bsudo `).ReplaceAllString(text, "")
	text = nameFlag.ReplaceAllStringFunc(text, func(s string) string {
		return "--name " + r.lab(nameFlag.FindStringSubmatch(s)[1])
	})
	text = nsName.ReplaceAllStringFunc(text, func(s string) string {
		return "nl-" + r.lab(nsName.FindStringSubmatch(s)[1]) + "-"
	})
	return strings.ReplaceAll(text, "/tmp/", r.dir+"/tmp/")
}

func (r *tourRun) lab(name string) string {
	l, ok := r.labs[name]
	if !ok {
		r.t.Fatalf("the tour names lab %q, which none of its up commands brings up", name)
	}
	return l
}

func (r *tourRun) command(text string) *exec.Cmd {
	cmd := exec.Command("bash", "-c", r.rewrite(text))
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1", cli.LabEnv+"="+r.cur,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// runFor runs a command in the foreground: stopped with SIGTERM after bound when it has
// one (it would run until Ctrl-C), else failed after a minute.
func (r *tourRun) runFor(c *tourCmd) (string, int) {
	proc := r.command(c.text)
	var out syncBuffer
	proc.Stdout, proc.Stderr = &out, &out
	if err := proc.Start(); err != nil {
		r.t.Fatalf("docs/tour.md:%d: %v", c.line, err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	limit, bounded := c.expect.bound, c.expect.bound > 0
	if !bounded {
		limit = time.Minute
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		_ = syscall.Kill(-proc.Process.Pid, syscall.SIGTERM)
		err = <-done
		if !bounded {
			r.t.Errorf("docs/tour.md:%d: %s: still running after %v", c.line, c.text, limit)
		}
	}
	return out.String(), exitCode(err)
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// tourNames writes an output in the tour's own names: its lab names and /tmp.
func (r *tourRun) tourNames(out string) string {
	for tourName, l := range r.labs {
		out = strings.ReplaceAll(out, l, tourName)
	}
	return strings.ReplaceAll(out, r.dir+"/tmp/", "/tmp/")
}

// check compares a command's output (in the tour's names) and exit status with its annotation.
func check(c *tourCmd, shown []string, out string, code int) error {
	var problems []string
	if code != c.expect.exit {
		problems = append(problems, fmt.Sprintf("exit %d, the tour expects %d", code, c.expect.exit))
	}
	if miss := missing(c.expect.patterns, strings.Split(out, "\n")); len(miss) > 0 {
		problems = append(problems, fmt.Sprintf("no line matches %q", miss))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("docs/tour.md:%d: $ %s\n  %s\n  the tour shows:\n    %s\n  the output was:\n    %s", c.line, c.text,
		strings.Join(problems, "; "), strings.Join(shown, "\n    "), strings.ReplaceAll(strings.TrimRight(out, "\n"), "\n", "\n    "))
}

func (r *tourRun) do(b *tourBlock, i int) {
	c := b.cmds[i]
	text := strings.TrimSpace(c.text)
	switch {
	case c.background():
		proc := r.command(c.text)
		j := &tourJob{cmd: c, shown: shownFor(b, i), proc: proc, out: &syncBuffer{}, done: make(chan struct{})}
		proc.Stdout, proc.Stderr = j.out, j.out
		if err := proc.Start(); err != nil {
			r.t.Fatalf("docs/tour.md:%d: %v", c.line, err)
		}
		go func() { j.err = proc.Wait(); close(j.done) }()
		r.jobs = append(r.jobs, j)
		if c.expect.ready != nil {
			deadline := time.Now().Add(30 * time.Second)
			for !c.expect.ready.MatchString(j.out.String()) {
				select {
				case <-j.done:
					r.t.Fatalf("docs/tour.md:%d: %s ended before it was ready (%s): %s", c.line, c.text, c.expect.ready, j.out.String())
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					r.t.Fatalf("docs/tour.md:%d: %s: not ready (%s) after 30s: %s", c.line, c.text, c.expect.ready, j.out.String())
				}
			}
		}
		return
	case text == "wait":
		for _, j := range r.jobs {
			r.finish(j, false)
		}
		r.jobs = nil
		return
	case jobKill.MatchString(text):
		n, _ := strconv.Atoi(jobKill.FindStringSubmatch(text)[1])
		if n < 1 || n > len(r.jobs) || r.jobs[n-1] == nil {
			r.t.Fatalf("docs/tour.md:%d: %s: no such job", c.line, text)
		}
		r.finish(r.jobs[n-1], true)
		r.jobs[n-1] = nil
		return
	}
	if upCommand.MatchString(c.text) {
		r.cur = r.labs[r.labOf(c.text)]
	}
	deadline := time.Now().Add(c.expect.retry)
	for {
		out, code := r.runFor(c)
		err := check(c, c.shown, r.tourNames(out), code)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// finish ends a background job (kill: SIGTERM, as kill %N; else wait for it, bounded) and
// checks it.
func (r *tourRun) finish(j *tourJob, kill bool) {
	if j == nil {
		return
	}
	limit := j.cmd.expect.bound
	if limit == 0 {
		limit = 30 * time.Second
	}
	if kill {
		// As a reader would: watch until the lines the tour shows are there (bounded), then stop it.
		deadline := time.Now().Add(15 * time.Second)
		for len(missing(j.cmd.expect.patterns, strings.Split(r.tourNames(j.out.String()), "\n"))) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-j.proc.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-j.done:
	case <-time.After(limit):
		_ = syscall.Kill(-j.proc.Process.Pid, syscall.SIGKILL)
		<-j.done
		if j.cmd.expect.bound == 0 {
			r.t.Errorf("docs/tour.md:%d: %s: still running after %v", j.cmd.line, j.cmd.text, limit)
		}
	}
	if err := check(j.cmd, j.shown, r.tourNames(j.out.String()), exitCode(j.err)); err != nil {
		r.t.Fatal(err)
	}
}

// Every command of docs/tour.md, in order, against real labs: the output shows the key lines
// the tour's annotations name.
func TestIntegrationTour(t *testing.T) {
	labtest.RequireRoot(t)
	blocks := readTour(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(labtest.Binary(t), filepath.Join(dir, "bin", "netlab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "scenarios"), filepath.Join(dir, "scenarios")); err != nil {
		t.Fatal(err)
	}
	r := &tourRun{t: t, dir: dir, root: root, labs: map[string]string{}}
	// The labs the tour brings up, each under a unique name, down at the end even on failure.
	for _, b := range blocks {
		for _, c := range b.cmds {
			if upCommand.MatchString(c.text) {
				name := r.labOf(c.text)
				if _, ok := r.labs[name]; !ok {
					r.labs[name] = labtest.LabName("tour")
				}
			}
		}
	}
	t.Cleanup(func() {
		for _, j := range r.jobs {
			if j != nil {
				_ = syscall.Kill(-j.proc.Process.Pid, syscall.SIGKILL)
				<-j.done
			}
		}
		for _, l := range r.labs {
			labtest.Remove(t, l)
		}
	})
	n := 0
	for _, b := range blocks {
		for i := range b.cmds {
			r.do(b, i)
			n++
		}
		for _, j := range r.jobs {
			if j != nil {
				t.Fatalf("docs/tour.md:%d: %s still runs at the end of its block: the tour must wait for it or kill it", j.cmd.line, j.cmd.text)
			}
		}
		r.jobs = nil
	}
	t.Logf("%d tour commands ran against labs %v", n, r.labs)
}
