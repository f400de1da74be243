package conformance_test

import (
	"os"
	"testing"

	"github.com/e7763abc/pod-runner/test/testbin"
)

// TestMain removes the binaries the suite's runs were given (testbin
// builds them into a directory of its own, a quarter GB each time).
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}
