package oracle

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/e7763abc/pod-runner/test/testbin"
)

// known are the differences between internal/supervisor and Tekton that this
// suite found and that the supervisor's owner has yet to fix, by key, with
// why they differ. TestReasons marks a constant with its key while the two
// differ (a scenario that disagrees sets its own disagreement field). Once a
// difference is fixed its entry must go: the suite fails while an entry no
// longer occurs. None is open now.
var known = map[string]string{}

// seenKnown are the known disagreements some scenario ran into.
var seenKnown = map[string]bool{}

// TestMain fails a full run in which a known disagreement no longer occurs,
// so that a fixed one leaves the list and is checked again.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		for k := range known {
			if !seenKnown[k] {
				fmt.Fprintf(os.Stderr, "known disagreement %q no longer occurs: remove it from known (test/oracle/known_test.go)\n", k)
				code = 1
			}
		}
	}
	os.Exit(code)
}
