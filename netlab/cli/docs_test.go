package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// netlabCall finds a netlab command line in a snippet of code.
var netlabCall = regexp.MustCompile("(?:^|[\\s(/`])netlab ([^`]*)")

// docSnippets returns the code of a document: markdown code blocks (indented four spaces)
// and inline code spans, and YAML comment lines indented as examples.
func docSnippets(path string, text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasSuffix(path, ".yaml"):
			if rest, ok := strings.CutPrefix(line, "#   "); ok {
				out = append(out, rest)
			}
		case strings.HasPrefix(line, "    "):
			out = append(out, line)
		default:
			for i, span := range strings.Split(line, "`") {
				if i%2 == 1 {
					out = append(out, span)
				}
			}
		}
	}
	return out
}

// shellWords splits a command line as a shell would, up to the first operator or comment.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in := false
	flush := func() {
		if in {
			words = append(words, cur.String())
		}
		cur.Reset()
		in = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return words
			}
			cur.WriteString(s[i+1 : i+1+end])
			in = true
			i += end + 1
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				return words
			}
			cur.WriteString("SUBST")
			in = true
			i += end
		case c == ' ' || c == '\t':
			flush()
		case strings.IndexByte("|&;<>#)", c) >= 0:
			flush()
			return words
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	flush()
	return words
}

// Every netlab command line in the README, the tour and the scenarios' comments is one
// the CLI accepts as written: its verb, its flags and its number of arguments.
func TestDocumentedCommandsParse(t *testing.T) {
	files := []string{"../../README.md", "../../docs/tour.md"}
	yamls, _ := filepath.Glob("../../scenarios/*.yaml")
	files = append(files, yamls...)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, snippet := range docSnippets(f, string(b)) {
			for _, m := range netlabCall.FindAllStringSubmatch(snippet, -1) {
				if strings.ContainsAny(m[1], "[…") || strings.Contains(m[1], "...") {
					continue // a synopsis, not a command line
				}
				args := shellWords(m[1])
				if len(args) == 0 {
					continue
				}
				checked++
				if err := parses(args); err != nil {
					t.Errorf("%s: netlab %s: %v", f, strings.Join(args, " "), err)
				}
			}
		}
	}
	t.Logf("%d documented command lines parse", checked)
	if checked < 30 {
		t.Errorf("only %d documented command lines found", checked)
	}
}

// parses checks a command line as Execute would, without running it.
func parses(args []string) error {
	root := New(nil, nil)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	cmd, rest, err := root.Find(hoistName(args))
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if cmd.Args == nil {
		return nil
	}
	return cmd.Args(cmd, cmd.Flags().Args())
}
