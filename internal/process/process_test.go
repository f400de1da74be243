package process

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// objects are ConfigMaps and Secrets for a test, by "Kind/name".
type objects map[string]map[string][]byte

func (o objects) Data(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool) {
	d, ok := o[kind.Object()+"/"+name]
	return d, ok
}

// TestFilesVolumes: a ConfigMap or Secret volume is laid out from the
// documents when the task starts, as the kubelet lays it out: the Plan
// names it and its items only.
func TestFilesVolumes(t *testing.T) {
	objs := objects{"ConfigMap/cm": {"a.txt": []byte("A"), "b": []byte("B"), "unlisted": []byte("U")}, "Secret/s": {"a.txt": []byte("A"), "b": []byte("B"), "unlisted": []byte("U")}}
	// A key listed twice is written at both paths, as the kubelet does.
	data := map[string][]byte{"a.txt": []byte("A"), "sub/b.txt": []byte("B"), "again/a": []byte("A")}
	items := []*planpb.KeyToPath{{Key: "a.txt", Path: "a.txt"}, {Key: "b", Path: "sub/b.txt"}, {Key: "a.txt", Path: "again/a"}}
	cases := []struct {
		name              string
		vol               *planpb.Volume
		fileMode, dirMode fs.FileMode
	}{
		{name: "configmap", vol: &planpb.Volume{Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "cm", Items: items}}}, fileMode: 0o644, dirMode: 0o755},
		{name: "configmap read-only", vol: &planpb.Volume{ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "cm", Items: items}}}, fileMode: 0o444, dirMode: 0o555},
		{name: "secret", vol: &planpb.Volume{Source: &planpb.Volume_Secret{Secret: &planpb.Files{Name: "s", Items: items}}}, fileMode: 0o600, dirMode: 0o700},
		{name: "secret read-only", vol: &planpb.Volume{ReadOnly: true, Source: &planpb.Volume_Secret{Secret: &planpb.Files{Name: "s", Items: items}}}, fileMode: 0o400, dirMode: 0o500},
		{name: "secret defaultMode", vol: &planpb.Volume{Source: &planpb.Volume_Secret{Secret: &planpb.Files{Name: "s", Items: items, DefaultMode: 0o640}}}, fileMode: 0o640, dirMode: 0o700},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.vol.Name = "v"
			l := newPrepared(t, Options{Objects: objs}, c.vol)
			att := startTask(t, l, "t", nil, &planpb.WorkspaceBinding{Name: "ws", Volume: "v"})
			dir, ok := att.Workspace("ws")
			if !ok {
				t.Fatal("workspace not bound")
			}
			for name, content := range data {
				p := filepath.Join(dir, name)
				if got := readString(t, p); got != string(content) {
					t.Errorf("%s = %q, want %q", name, got, content)
				}
				if info, err := os.Stat(p); err != nil || info.Mode().Perm() != c.fileMode {
					t.Errorf("%s mode = %v, %v; want %v", name, info.Mode().Perm(), err, c.fileMode)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "unlisted")); err == nil {
				t.Error("a key that is not among the items was laid out")
			}
			for _, d := range []string{dir, filepath.Join(dir, "sub")} {
				if info, err := os.Stat(d); err != nil || info.Mode().Perm() != c.dirMode {
					t.Errorf("%s mode = %v, %v; want %v", d, info.Mode().Perm(), err, c.dirMode)
				}
			}
			// Root writes through a-w; only an unprivileged step is stopped.
			if c.vol.ReadOnly && os.Geteuid() != 0 {
				e := runStep(t, att, &supervisor.Step{Task: "t", Name: "w", Command: []string{"sh", "-c", `echo x > "$D/new"`}, Env: []string{"D=" + dir}})
				if e.ExitCode == 0 {
					t.Error("a step wrote into a read-only volume")
				}
			}
		})
	}
}

// TestProjectedVolume: a projected volume's ConfigMap and Secret sources
// are laid out into its one directory, read-only once all are in; one with
// a source only the kubelet has is refused before anything runs.
func TestProjectedVolume(t *testing.T) {
	objs := objects{"ConfigMap/cm": {"recipe": []byte("R"), "other": []byte("O")}, "Secret/s": {"password": []byte("P")}}
	vol := &planpb.Volume{Name: "v", ReadOnly: true, Source: &planpb.Volume_Projected{Projected: &planpb.EmptyDir{}},
		ProjectedFiles: []*planpb.ProjectedFiles{
			{Kind: planpb.KeyRef_CONFIG_MAP, Files: &planpb.Files{Name: "cm", Items: []*planpb.KeyToPath{{Key: "recipe", Path: "recipe.txt"}}}},
			{Kind: planpb.KeyRef_SECRET, Files: &planpb.Files{Name: "s"}},
		}}
	l := newPrepared(t, Options{Objects: objs}, vol)
	att := startTask(t, l, "t", nil, &planpb.WorkspaceBinding{Name: "ws", Volume: "v"})
	dir, _ := att.Workspace("ws")
	for name, want := range map[string]string{"recipe.txt": "R", "password": "P"} {
		if got := readString(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Error("a key that is not among the items was laid out")
	}
	if info, err := os.Stat(filepath.Join(dir, "recipe.txt")); err != nil || info.Mode().Perm()&0o222 != 0 {
		t.Errorf("recipe.txt mode %v, %v: want read-only", info.Mode(), err)
	}
	refused := &planpb.Plan{Volumes: []*planpb.Volume{{Name: "v", Source: &planpb.Volume_Projected{Projected: &planpb.EmptyDir{}}, ProjectedUnsupported: "its downwardAPI source"}}}
	if err := Unsupported(refused, true); err == nil || !strings.Contains(err.Error(), "downwardAPI") {
		t.Errorf("Unsupported = %v, want the downwardAPI source named", err)
	}
	if err := Unsupported(&planpb.Plan{Volumes: []*planpb.Volume{vol}}, true); err != nil {
		t.Errorf("Unsupported = %v for ConfigMap and Secret sources", err)
	}
}

func TestFilesVolumeRejectsEscapingKey(t *testing.T) {
	dir := t.TempDir()
	l := New(Options{Dir: dir})
	l.opts.Objects = objects{"ConfigMap/cm": {"k": nil}}
	vol := &planpb.Volume{Name: "v", Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "cm", Items: []*planpb.KeyToPath{{Key: "k", Path: "../evil"}}}}}
	err := l.Prepare(context.Background(), &planpb.Plan{Volumes: []*planpb.Volume{vol}})
	if err == nil || !strings.Contains(err.Error(), "../evil") {
		t.Fatalf("Prepare = %v, want an error naming the key", err)
	}
	// The supervisor does not Close a launcher whose Prepare failed.
	if left, _ := os.ReadDir(dir); len(left) != 0 || l.RunDir() != "" {
		t.Errorf("a failed Prepare left %v behind (RunDir %q)", left, l.RunDir())
	}
}

func TestWorkspaces(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	vols := []*planpb.Volume{
		{Name: "empty", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}},
		{Name: "tmpl", Source: &planpb.Volume_ClaimTemplate{ClaimTemplate: &planpb.EmptyDir{}}},
		{Name: "host", Source: &planpb.Volume_HostPath{HostPath: "rel/host"}},
		{Name: "pvc1", Source: &planpb.Volume_PersistentVolumeClaim{PersistentVolumeClaim: "claim"}},
		{Name: "pvc2", Source: &planpb.Volume_PersistentVolumeClaim{PersistentVolumeClaim: "claim"}},
	}
	l := newPrepared(t, Options{}, vols...)
	att := startTask(t, l, "t", nil,
		&planpb.WorkspaceBinding{Name: "e", Volume: "empty"},
		&planpb.WorkspaceBinding{Name: "e-sub", Volume: "empty", SubPath: "a/b"},
		&planpb.WorkspaceBinding{Name: "tm", Volume: "tmpl"},
		&planpb.WorkspaceBinding{Name: "h", Volume: "host"},
		&planpb.WorkspaceBinding{Name: "p1", Volume: "pvc1"},
		&planpb.WorkspaceBinding{Name: "p2", Volume: "pvc2"},
	)
	path := func(name string) string {
		p, ok := att.Workspace(name)
		if !ok {
			t.Fatalf("workspace %q not bound", name)
		}
		if info, err := os.Stat(p); err != nil || !info.IsDir() {
			t.Errorf("workspace %q: %s is not a directory (%v)", name, p, err)
		}
		return p
	}
	if got, want := path("e-sub"), filepath.Join(path("e"), "a", "b"); got != want {
		t.Errorf("subPath workspace = %s, want %s", got, want)
	}
	if path("e") == path("tm") {
		t.Error("emptyDir and volumeClaimTemplate volumes share a directory")
	}
	if got, want := path("h"), filepath.Join(base, "rel", "host"); got != want {
		t.Errorf("host path = %s, want %s (absolute)", got, want)
	}
	if path("p1") != path("p2") {
		t.Error("two volumes of one claim do not share it")
	}
	if p, ok := att.Workspace("unbound"); ok || p != "" {
		t.Errorf("unbound workspace = %q, %v", p, ok)
	}

	bad := []struct {
		name    string
		binding *planpb.WorkspaceBinding
		want    string
	}{
		{name: "unknown volume", binding: &planpb.WorkspaceBinding{Name: "x", Volume: "nope"}, want: `no volume "nope"`},
		{name: "escaping subPath", binding: &planpb.WorkspaceBinding{Name: "x", Volume: "empty", SubPath: "../up"}, want: "leaves the volume"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			task := &planpb.Task{Name: "bad", Workspaces: []*planpb.WorkspaceBinding{c.binding}}
			_, err := l.StartAttempt(context.Background(), task, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("StartAttempt = %v, want %q", err, c.want)
			}
		})
	}
}

func TestAttemptsHaveTheirOwnDirs(t *testing.T) {
	l := newPrepared(t, Options{})
	task := &planpb.Task{Name: "t", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}, {}}}}
	var results []string
	for n := range 2 {
		att, err := l.StartAttempt(context.Background(), task, n)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, att.ResultsDir())
		// An unnamed step is Tekton's "unnamed-INDEX".
		for _, d := range []string{att.ResultsDir(), filepath.Join(att.StepDir("s"), "results"), filepath.Join(att.StepDir("unnamed-1"), "results")} {
			if !filepath.IsAbs(d) {
				t.Errorf("%s is not absolute", d)
			}
			if info, err := os.Stat(d); err != nil || !info.IsDir() {
				t.Errorf("%s not created: %v", d, err)
			}
		}
		if got := filepath.Base(att.StepDir("s")); got != "step-s" {
			t.Errorf("step dir = %s, want step-s", got)
		}
	}
	if results[0] == results[1] {
		t.Error("retries share a results dir")
	}
}

func TestClose(t *testing.T) {
	cases := []struct {
		name string
		keep bool
	}{
		{name: "removes", keep: false},
		{name: "keeps", keep: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := New(Options{Dir: t.TempDir(), Keep: c.keep, Objects: objects{"ConfigMap/cm": {"k": []byte("v")}}})
			ro := &planpb.Volume{Name: "cm", ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "cm"}}}
			if err := l.Prepare(context.Background(), &planpb.Plan{Name: "run", Volumes: []*planpb.Volume{ro}}); err != nil {
				t.Fatal(err)
			}
			att, err := l.StartAttempt(context.Background(), &planpb.Task{Name: "t"}, 0)
			if err != nil {
				t.Fatal(err)
			}
			// A step leaves a read-only tree behind, as Go's module cache does.
			if e := runStep(t, att, &supervisor.Step{Task: "t", Name: "s", Command: []string{"sh", "-c", "mkdir -p ro/x && touch ro/x/f && chmod -R a-w ro"}}); e.ExitCode != 0 || e.Err != nil {
				t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
			}
			dir := l.RunDir()
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			_, err = os.Stat(dir)
			if c.keep && err != nil {
				t.Errorf("kept run dir is gone: %v", err)
			}
			if !c.keep && !os.IsNotExist(err) {
				t.Errorf("run dir still there: %v", err)
			}
			if c.keep {
				// The test's temp dir cleanup cannot remove read-only parts.
				if err := removeAll(dir); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestStateDir: results, step dirs and scripts live in the state directory
// (in memory by default), workspaces in the run directory; with Keep both
// are the run directory; Close removes both.
func TestStateDir(t *testing.T) {
	for _, keep := range []bool{false, true} {
		dir, state := t.TempDir(), t.TempDir()
		l := New(Options{Dir: dir, StateDir: state, Keep: keep})
		if err := l.Prepare(context.Background(), &planpb.Plan{Name: "p"}); err != nil {
			t.Fatal(err)
		}
		att := startTask(t, l, "t", []string{"s"})
		wantState := state
		if keep {
			wantState = l.RunDir()
		}
		if !strings.HasPrefix(att.ResultsDir(), wantState+"/") || !strings.HasPrefix(att.StepDir("s"), wantState+"/") {
			t.Errorf("keep=%v: results %s, step dir %s, want them under %s", keep, att.ResultsDir(), att.StepDir("s"), wantState)
		}
		if ws := att.(*attempt).workspaceDir(); !strings.HasPrefix(ws, l.RunDir()+"/") {
			t.Errorf("keep=%v: working dir %s not under the run dir %s", keep, ws, l.RunDir())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// Kept: the run dir stays, and the state was never apart from it.
		inDir, _ := os.ReadDir(dir)
		inState, _ := os.ReadDir(state)
		if len(inDir) != map[bool]int{false: 0, true: 1}[keep] || len(inState) != 0 {
			t.Errorf("keep=%v: after Close %s holds %d entries, %s holds %d", keep, dir, len(inDir), state, len(inState))
		}
	}
}

func TestUnsupported(t *testing.T) {
	plain := &planpb.Task{Name: "a", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}}}}
	withSidecar := &planpb.Task{Name: "b", Spec: &planpb.TaskSpec{Sidecars: []*planpb.Step{{Name: "db"}}}}
	withVolumes := &planpb.Task{Name: "c", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}}, Volumes: []string{"cache", "conf"}}}
	vol := func(name string, src any) *planpb.Volume {
		v := &planpb.Volume{Name: name}
		switch s := src.(type) {
		case *planpb.Volume_EmptyDir:
			v.Source = s
		case *planpb.Volume_Projected:
			v.Source = s
		case *planpb.Volume_Csi:
			v.Source = s
		}
		return v
	}
	projected := func(name, unsupported string) *planpb.Volume {
		v := vol(name, &planpb.Volume_Projected{Projected: &planpb.EmptyDir{}})
		v.ProjectedUnsupported = unsupported
		return v
	}
	for _, tc := range []struct {
		name     string
		plan     *planpb.Plan
		canMount bool
		want     []string // substrings of the error; none: no error
	}{
		{"plain", &planpb.Plan{Tasks: []*planpb.Task{plain}, Volumes: []*planpb.Volume{vol("ws", &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}})}}, false, nil},
		{"sidecar in finally (host processes run sidecars)", &planpb.Plan{Tasks: []*planpb.Task{plain}, Finally: []*planpb.Task{withSidecar}}, false, nil},
		{"task volumes, no mount namespaces", &planpb.Plan{Tasks: []*planpb.Task{plain, withVolumes}}, false, []string{`task "c" mounts volumes cache, conf`, "Task volumes are mounted at container paths, which needs root (mount namespaces) or pod mode (injector compile)"}},
		{"task volumes in mount namespaces", &planpb.Plan{Tasks: []*planpb.Task{plain, withVolumes}}, true, nil},
		{"projected workspace of the kubelet's sources", &planpb.Plan{Tasks: []*planpb.Task{plain}, Volumes: []*planpb.Volume{projected("proj", "its downwardAPI source")}}, true, []string{`workspace "proj" is a projected volume with its downwardAPI source`, "pod mode", "--workspace proj=DIR"}},
		{"projected workspace of ConfigMaps and Secrets", &planpb.Plan{Tasks: []*planpb.Task{plain}, Volumes: []*planpb.Volume{projected("proj", "")}}, true, nil},
		{"csi workspace", &planpb.Plan{Tasks: []*planpb.Task{plain}, Volumes: []*planpb.Volume{vol("c", &planpb.Volume_Csi{Csi: &planpb.EmptyDir{}})}}, true, []string{`workspace "c" is a CSI volume`, "pod mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Unsupported(tc.plan, tc.canMount)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Unsupported: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Unsupported: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestNoexec: a noexec filesystem is not used for the state, whose scripts
// must run.
func TestNoexec(t *testing.T) {
	if noexec(t.TempDir()) {
		t.Error("the test's temp dir is noexec")
	}
	if !mountns.Available() {
		testenv.Require(t, "CAP_SYS_ADMIN", errors.New("mounting a noexec tmpfs needs it"))
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOEXEC, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, 0)
	if !noexec(dir) {
		t.Error("a noexec tmpfs is not seen as noexec")
	}
}

// TestObjectEnv: a step's ConfigMap and Secret references are read when it
// starts, as the kubelet reads them: envFrom first (prefixed), env over it,
// an optional one missing leaves its variable unset, and a required one
// missing fails the step before it runs.
func TestObjectEnv(t *testing.T) {
	objs := objects{"ConfigMap/cfg": {"a": []byte("A"), "b": []byte("B")}, "Secret/creds": {"token": []byte("s3cret")}}
	l := newPrepared(t, Options{Objects: objs})
	att := startTask(t, l, "t", nil)
	out := filepath.Join(t.TempDir(), "out")
	step := &supervisor.Step{
		Task: "t", Name: "env", Command: []string{"sh", "-c", `echo "$CFG_a|$CFG_b|$TOKEN|${MAYBE-unset}" > "$OUT"`},
		Env:     []string{"OUT=" + out, "CFG_b=overridden"},
		EnvFrom: []*planpb.EnvFrom{{Name: "cfg", Prefix: "CFG_"}, {Kind: planpb.KeyRef_SECRET, Name: "absent", Optional: true}},
		EnvRefs: []*planpb.EnvVar{
			{Name: "TOKEN", ValueFrom: &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: "creds", Key: "token"}},
			{Name: "MAYBE", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "nope", Optional: true}},
		},
	}
	if e := runStep(t, att, step); e.ExitCode != 0 || e.Err != nil {
		t.Fatalf("exit %d, %v", e.ExitCode, e.Err)
	}
	if got := readString(t, out); got != "A|overridden|s3cret|unset\n" {
		t.Errorf("env seen by the step: %q", got)
	}
	for _, ref := range []*planpb.EnvVar{
		{Name: "X", ValueFrom: &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: "absent", Key: "k"}},
		{Name: "X", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "nokey"}},
	} {
		e := runStep(t, att, &supervisor.Step{Task: "t", Name: "missing", Command: []string{"touch", out + ".ran"}, EnvRefs: []*planpb.EnvVar{ref}})
		if e.Err == nil || !strings.Contains(e.Err.Error(), ref.GetValueFrom().GetName()) {
			t.Errorf("%v: err %v, want one naming the object", ref, e.Err)
		}
		if _, err := os.Stat(out + ".ran"); err == nil {
			t.Errorf("%v: the step ran", ref)
		}
	}
}
