// Command testsummary reads `go test -json` event files (gotestsum's
// --jsonfile) and prints what make test must end with: one line listing
// every skipped test and why, and the counts of passed, failed and skipped
// tests.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is the part of a test2json event read here.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// skip is one skipped test and why.
type skip struct{ test, why string }

// summary folds the events of one or more runs.
type summary struct {
	passed, failed int
	skips          []skip
	output         map[string][]string // by package and test: the output lines so far
}

func main() {
	s := &summary{output: map[string][]string{}}
	for _, path := range os.Args[1:] {
		if err := s.readFile(path); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
	}
	s.print(os.Stdout)
}

func (s *summary) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.read(f)
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // go test's own lines (build errors) among the events
		}
		s.add(e)
	}
	return sc.Err()
}

func (s *summary) add(e event) {
	if e.Test == "" {
		return // package-level events: no test files, the package's result
	}
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output":
		s.output[key] = append(s.output[key], e.Output)
	case "pass":
		s.passed++
		delete(s.output, key)
	case "fail":
		s.failed++
		delete(s.output, key)
	case "skip":
		s.skips = append(s.skips, skip{test: key, why: reason(s.output[key])})
		delete(s.output, key)
	}
}

// location is the file:line prefix testing puts before a logged line.
var location = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)

// reason is what a skipped test logged after its "--- SKIP" line: the
// message of t.Skip, without its file and line.
func reason(lines []string) string {
	var why []string
	after := false
	for _, l := range lines {
		if strings.Contains(l, "--- SKIP: ") {
			after, why = true, nil
			continue
		}
		if after {
			why = append(why, strings.TrimSpace(location.ReplaceAllString(l, "")))
		}
	}
	if len(why) == 0 {
		return "no reason given"
	}
	return strings.Join(why, " ")
}

func (s *summary) print(w io.Writer) {
	if len(s.skips) == 0 {
		fmt.Fprintln(w, "skipped: none")
	} else {
		sort.Slice(s.skips, func(i, j int) bool { return s.skips[i].test < s.skips[j].test })
		parts := make([]string, len(s.skips))
		for i, k := range s.skips {
			parts[i] = k.test + " (" + k.why + ")"
		}
		fmt.Fprintf(w, "skipped (%d): %s\n", len(s.skips), strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, len(s.skips))
}
