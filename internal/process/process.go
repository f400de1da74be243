// Package process is the local launcher: it runs a Plan's steps as host
// processes, with the run's volumes, results and workspaces as directories.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/e7763abc/pod-runner/internal/stepexec"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

var _ supervisor.Launcher = (*Launcher)(nil)

// DefaultGrace is how long a stopped step has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Options configure a Launcher.
type Options struct {
	// Keep leaves the run directory in place on Close.
	Keep bool
	// Log receives the live output of every step, one "[task/step] " prefixed
	// line at a time. Nil discards it.
	Log io.Writer
	// Grace is the time between SIGTERM and SIGKILL when a step is stopped
	// (DefaultGrace when zero).
	Grace time.Duration
	// Dir is the parent of the run directory (os.TempDir() when empty):
	// volumes, HOME and each attempt's default working directory.
	Dir string
	// StateDir is the parent of the run's state directory: results, step
	// directories and scripts, small files written and read on every task
	// (a pod keeps them in an in-memory volume too). When empty it is
	// $XDG_RUNTIME_DIR or /dev/shm if writable, else Dir; with Keep it is the
	// run directory itself, so everything kept is in one place.
	StateDir string
	// Shell is the POSIX shell that stands for sh and ash: a busybox binary
	// makes scripts written for the busybox and alpine images most Tekton
	// steps use behave as they do there (ash accepts "[ a == b ]", dash does
	// not). A script's #!/bin/sh or #!/bin/ash, a command /bin/sh or
	// /bin/ash, and sh or ash looked up in PATH all run it. Empty: the host's
	// shells.
	Shell string
	// Self is the pod-runner binary, which can run a step in a mount
	// namespace where it sees Tekton's paths (mountns.Command; root only).
	// Empty: steps see host directories, substituted.
	Self string
	// Env is the base environment of every step (KEY=VALUE). When nil, steps
	// get PATH and a few harmless host variables (locale, time zone), not the
	// whole host environment: a container does not inherit it either. HOME is
	// a per-run directory unless Env sets it.
	Env []string
	// TaskMounts are the Task volumes and volumeMounts of each task that
	// has some, by plan task name; they run in mount namespaces (root).
	TaskMounts map[string]*TaskMounts
	// Objects hold the ConfigMaps and Secrets the Plan refers to (the
	// documents given), read when a step starts or a volume is made, as
	// the kubelet reads the cluster's: the Plan has only their names. Nil:
	// none was given.
	Objects Objects
}

// Objects are ConfigMaps and Secrets by name: compile.Compiled is one.
type Objects interface {
	// Data is the data of the named ConfigMap or Secret, or false.
	Data(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool)
}

// hostVars are the host variables a step inherits by default.
var hostVars = []string{"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "USER", "LOGNAME"}

// fallbackPath is PATH when the host has none.
const fallbackPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Launcher runs steps as host processes. It implements supervisor.Launcher.
type Launcher struct {
	opts Options
	log  *lockedWriter

	mu     sync.Mutex
	runDir string
	state  string // run directory of the state: results, steps, scripts
	// shellDir holds sh and ash standing for Options.Shell, or is "".
	shellDir string
	env      []string          // base env, HOME included
	volumes  map[string]string // plan volume name → directory
	// readOnlyVolumes are the plan volumes bound read-only.
	readOnlyVolumes map[string]bool
	uid             string // the plan's
	// nsRoot and nsScratch are the mount points of the mount namespaces'
	// roots (mountns.Spec), made when a task first needs them.
	nsRoot, nsScratch string
	// noMounts is said once: why tasks that need Tekton's paths see host
	// directories instead.
	noMounts sync.Once
	closed   bool
}

// New returns a Launcher; nothing is created on disk before Prepare.
func New(opts Options) *Launcher {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Dir == "" {
		opts.Dir = os.TempDir()
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	return &Launcher{opts: opts, log: &lockedWriter{w: opts.Log}}
}

// RunDir is the run directory ("" before Prepare).
func (l *Launcher) RunDir() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runDir
}

// Prepare creates the run directory and one directory per plan volume. When
// it fails it removes what it made: the supervisor does not Close then.
func (l *Launcher) Prepare(_ context.Context, plan *planpb.Plan) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runDir != "" {
		return errors.New("launcher already prepared")
	}
	err := l.prepare(plan)
	if err != nil {
		l.removeDirs()
	}
	return err
}

func (l *Launcher) prepare(plan *planpb.Plan) error {
	if err := os.MkdirAll(l.opts.Dir, 0o755); err != nil {
		return fmt.Errorf("create run parent dir: %w", err)
	}
	dir, err := os.MkdirTemp(l.opts.Dir, "pod-runner-"+safeName(plan.GetName())+"-")
	if err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	// MkdirTemp may return a relative path when Dir is relative; steps run
	// in other working directories.
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	l.runDir = dir
	l.state = dir
	if parent := l.stateParent(); parent != "" {
		if l.state, err = os.MkdirTemp(parent, "pod-runner-state-"); err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		return fmt.Errorf("create home dir: %w", err)
	}
	l.env = baseEnv(l.opts.Env, home)
	if l.opts.Shell != "" {
		if err := l.installShell(); err != nil {
			return err
		}
	}
	l.uid = plan.GetUid()
	l.volumes = make(map[string]string, len(plan.GetVolumes()))
	l.readOnlyVolumes = map[string]bool{}
	for _, v := range plan.GetVolumes() {
		l.readOnlyVolumes[v.GetName()] = v.GetReadOnly()
		p, err := l.prepareVolume(v)
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.GetName(), err)
		}
		l.volumes[v.GetName()] = p
	}
	return nil
}

// stateParent is where the state directory goes, or "" for the run directory.
func (l *Launcher) stateParent() string {
	if l.opts.Keep {
		return ""
	}
	if l.opts.StateDir != "" {
		return l.opts.StateDir
	}
	for _, d := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if d != "" && syscall.Access(d, 2 /* W_OK */) == nil && !noexec(d) {
			return d
		}
	}
	return ""
}

// installShell links sh and ash to opts.Shell in the state's bin directory
// and puts that directory first in PATH.
func (l *Launcher) installShell() error {
	shell, err := filepath.Abs(l.opts.Shell)
	if err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	bin := filepath.Join(l.state, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	for _, name := range []string{"sh", "ash"} {
		if err := os.Symlink(shell, filepath.Join(bin, name)); err != nil {
			return fmt.Errorf("shell: %w", err)
		}
	}
	l.shellDir = bin
	for i, kv := range l.env {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			l.env[i] = "PATH=" + bin + string(os.PathListSeparator) + path
		}
	}
	return nil
}

// shellFor returns the shell standing for interpreter, or interpreter.
func (l *Launcher) shellFor(interpreter string) string {
	if l.shellDir != "" && (interpreter == "/bin/sh" || interpreter == "/bin/ash") {
		return filepath.Join(l.shellDir, filepath.Base(interpreter))
	}
	return interpreter
}

// noexec tells whether dir's filesystem is mounted noexec (as /dev/shm is
// in many containers): scripts could not run from it.
func noexec(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) != nil || st.Flags&0x8 /* ST_NOEXEC */ != 0
}

// removeDirs removes the run and state directories.
func (l *Launcher) removeDirs() error {
	var errs []error
	for _, d := range []string{l.state, l.runDir} {
		if d != "" && (d != l.state || l.state != l.runDir) {
			errs = append(errs, removeAll(d))
		}
	}
	l.runDir, l.state = "", ""
	return errors.Join(errs...)
}

// baseEnv is the environment every step starts from.
func baseEnv(env []string, home string) []string {
	if env == nil {
		for _, k := range hostVars {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
		if _, ok := os.LookupEnv("PATH"); !ok {
			env = append(env, "PATH="+fallbackPath)
		}
	}
	env = append([]string(nil), env...)
	if _, ok := stepexec.LookupEnv(env, "HOME"); !ok {
		env = append(env, "HOME="+home)
	}
	return env
}

// prepareVolume makes the directory behind one plan volume.
func (l *Launcher) prepareVolume(v *planpb.Volume) (string, error) {
	if err := checkName(v.GetName()); err != nil {
		return "", err
	}
	return l.makeVolume(v, filepath.Join(l.runDir, "volumes", v.GetName()))
}

// makeVolume makes a volume's directory: own, unless it is a host path or
// a claim (shared by every volume bound to it).
func (l *Launcher) makeVolume(v *planpb.Volume, own string) (string, error) {
	switch src := v.GetSource().(type) {
	case *planpb.Volume_EmptyDir, *planpb.Volume_ClaimTemplate, nil:
		return own, os.MkdirAll(own, 0o755)
	case *planpb.Volume_HostPath:
		p, err := filepath.Abs(src.HostPath)
		if err != nil {
			return "", fmt.Errorf("host path: %w", err)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("host path: %w", err)
		}
		return p, nil
	case *planpb.Volume_PersistentVolumeClaim:
		// Volumes bound to the same claim share its data, as in a cluster.
		if err := checkName(src.PersistentVolumeClaim); err != nil {
			return "", fmt.Errorf("claim: %w", err)
		}
		p := filepath.Join(l.runDir, "claims", src.PersistentVolumeClaim)
		return p, os.MkdirAll(p, 0o755)
	case *planpb.Volume_ConfigMap:
		return own, l.writeFiles(own, planpb.KeyRef_CONFIG_MAP, src.ConfigMap, 0o755, 0o644, v.GetReadOnly())
	case *planpb.Volume_Secret:
		return own, l.writeFiles(own, planpb.KeyRef_SECRET, src.Secret, 0o700, 0o600, v.GetReadOnly())
	case *planpb.Volume_Projected:
		// Every source into the one directory, read-only once all are in.
		sources := v.GetProjectedFiles()
		if err := os.MkdirAll(own, 0o755); err != nil {
			return "", err
		}
		for i, p := range sources {
			mode := fs.FileMode(0o644)
			if p.GetKind() == planpb.KeyRef_SECRET {
				mode = 0o600
			}
			if err := l.writeFiles(own, p.GetKind(), p.GetFiles(), 0o755, mode, v.GetReadOnly() && i == len(sources)-1); err != nil {
				return "", err
			}
		}
		return own, nil
	default:
		return "", fmt.Errorf("unknown volume source %T", src)
	}
}

// writeFiles lays out a ConfigMap's or Secret's data under dir as the
// kubelet does (every key at its name, or only the items at their paths,
// with their modes), and makes the tree read-only (a-w) when readOnly.
// fileMode is the mode without a defaultMode (a Secret's is 0600 here,
// stricter than the kubelet's 0644: the run directory may be in a shared
// /tmp).
func (l *Launcher) writeFiles(dir string, kind planpb.KeyRef_Kind, f *planpb.Files, dirMode, fileMode fs.FileMode, readOnly bool) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	data, found := l.data(kind, f.GetName())
	if !found && !f.GetOptional() {
		return fmt.Errorf("%s %q not found: give it as a document", kind.Object(), f.GetName())
	}
	if m := f.GetDefaultMode(); m != 0 {
		fileMode = fs.FileMode(m) & fs.ModePerm
	}
	// One file per item: the kubelet writes a key listed twice at both
	// paths.
	type file struct {
		key, path string
		mode      fs.FileMode
	}
	var files []file
	if len(f.GetItems()) == 0 {
		for k := range data {
			files = append(files, file{k, k, fileMode})
		}
	}
	for _, it := range f.GetItems() {
		if _, ok := data[it.GetKey()]; !ok {
			if found && !f.GetOptional() {
				return fmt.Errorf("%s %q has no key %q", kind.Object(), f.GetName(), it.GetKey())
			}
			continue
		}
		mode := fileMode
		if it.GetMode() != 0 {
			mode = fs.FileMode(it.GetMode()) & fs.ModePerm
		}
		files = append(files, file{it.GetKey(), it.GetPath(), mode})
	}
	for _, fl := range files {
		if !filepath.IsLocal(fl.path) {
			return fmt.Errorf("%s %q: path %q is not a relative path inside the volume", kind.Object(), f.GetName(), fl.path)
		}
		p := filepath.Join(dir, fl.path)
		if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
			return err
		}
		if err := os.WriteFile(p, data[fl.key], fl.mode); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask; the volume's is not.
		if err := os.Chmod(p, fl.mode); err != nil {
			return err
		}
	}
	if !readOnly {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()&^0o222)
	})
}

// Close removes the run directory unless Options.Keep.
func (l *Launcher) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.runDir == "" || l.opts.Keep {
		l.closed = true
		return nil
	}
	l.closed = true
	return l.removeDirs()
}

// removeAll removes dir. Read-only volumes and whatever steps made read-only
// (Go's module cache, say) would stop os.RemoveAll: give the owner write
// access first. WalkDir calls fn on a directory before reading it and does
// not follow links.
func removeAll(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o700 != 0o700 {
				_ = os.Chmod(p, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove run dir: %w", err)
	}
	return nil
}

// checkName refuses names that are not a single path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("%q is not usable as a directory name", name)
	}
	return nil
}

// safeName is name with only characters that are safe in a file name.
func safeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Unsupported reports what in plan host processes cannot run, before
// anything runs: projected or CSI workspaces (the kubelet builds them),
// and, where mount namespaces cannot be made (canMount false), Task
// volumes (mounted at container paths).
func Unsupported(plan *planpb.Plan, canMount bool) error {
	for _, t := range plan.AllTasks() {
		if vs := t.GetSpec().GetVolumes(); len(vs) > 0 && !canMount {
			return fmt.Errorf("task %q mounts volumes %s: Task volumes are mounted at container paths, which needs root (mount namespaces) or pod mode (injector compile)", t.GetName(), strings.Join(vs, ", "))
		}
	}
	for _, v := range plan.GetVolumes() {
		switch v.GetSource().(type) {
		case *planpb.Volume_Projected:
			if why := v.GetProjectedUnsupported(); why != "" {
				return fmt.Errorf("workspace %q is a projected volume with %s, which the kubelet builds: it needs pod mode (injector compile); bind it with --workspace %s=DIR to run it here", v.GetName(), why, v.GetName())
			}
		case *planpb.Volume_Csi:
			return fmt.Errorf("workspace %q is a CSI volume: a CSI driver provides it, so it needs pod mode (injector compile); bind it with --workspace %s=DIR to run it here", v.GetName(), v.GetName())
		}
	}
	return nil
}
