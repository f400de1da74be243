package podlayout

import (
	"regexp"
	"strings"
	"testing"
)

var dns = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestNames(t *testing.T) {
	long := strings.Repeat("very-long-task-name-", 5)
	names := map[string]string{
		"plain":         StepContainer("build", "compile"),
		"upper":         StepContainer("Build", "Compile"),
		"long":          StepContainer(long, "step"),
		"long2":         StepContainer(long, "step2"),
		"unnamed":       StepContainer("t", "unnamed-0"),
		"sidecar":       SidecarContainer("t", "db"),
		"volume":        WorkspaceVolume("source", "uid-1"),
		"volume-long":   WorkspaceVolume(long, "uid-1"),
		"task dir":      TaskDir("build"),
		"task dir dots": TaskDir("a.b"),
	}
	seen := map[string]string{}
	for what, n := range names {
		if len(n) > 63 || !dns.MatchString(n) {
			t.Errorf("%s: %q is not a DNS label", what, n)
		}
		if prev, ok := seen[n]; ok {
			t.Errorf("%s and %s share the name %q", what, prev, n)
		}
		seen[n] = what
	}
	if got := StepContainer("build", "compile"); got != "build-compile" {
		t.Errorf("readable names stay as they are: %q", got)
	}
	if again := StepContainer(long, "step"); again != names["long"] {
		t.Error("shortening is not deterministic")
	}
	if WorkspaceVolume("source", "uid-1") == WorkspaceVolume("source", "uid-2") {
		t.Error("two runs share a volume name")
	}
}

func TestPlanEncoding(t *testing.T) {
	plan := []byte(strings.Repeat("task with steps and params ", 1000))
	enc := EncodePlan(plan)
	if len(enc) >= len(plan)/4 {
		t.Errorf("encoded %d bytes into %d: not compressed", len(plan), len(enc))
	}
	got, err := DecodePlan(enc)
	if err != nil || string(got) != string(plan) {
		t.Fatalf("DecodePlan = %d bytes, %v", len(got), err)
	}
	if _, err := DecodePlan("not base64!"); err == nil {
		t.Error("bad input decoded")
	}
	if long := VolumeName(strings.Repeat("x", 60)+"a", "u"); long == VolumeName(strings.Repeat("x", 60)+"b", "u") {
		t.Errorf("long volume names collide: %q", long)
	}
}

// TestImageBinaryNotUnderMounts: the Pod mounts volumes at these paths in
// the containers of the pod-runner image; the image's binary is a file, so
// none may lie under it (no runtime makes a mount point inside a file).
func TestImageBinaryNotUnderMounts(t *testing.T) {
	for _, dir := range []string{BinDir, RunDir, StateDir} {
		if strings.HasPrefix(dir, ImageBinary+"/") {
			t.Errorf("the Pod mounts %s under the image's binary %s", dir, ImageBinary)
		}
	}
}
