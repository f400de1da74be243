// Package mountns runs a local step where it sees the paths a container
// would: in a private mount namespace whose root is built for it — the
// host's top-level directories bound as they are, Tekton's paths
// (/workspace, /tekton/results, ...) and the task's mounts bound from the
// run's directories, the run's own state hidden. Nothing of it reaches the
// host's mount table, and no directory is made on the host's filesystem: a
// mount point that does not exist is made in a tmpfs or in an overlay.
package mountns

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/e7763abc/pod-runner/internal/stepexec"
)

// Command is the hidden command of the pod-runner binary that runs a step
// so: `SELF Command SPEC-JSON -- ARGV...`.
const Command = "_mount-exec"

// Bind is one mount of the step's view: the host path Src at Dst.
type Bind struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	ReadOnly bool   `json:"ro,omitempty"`
}

// Spec is a step's view of the filesystem.
type Spec struct {
	// Root and Scratch are empty host directories: the new root is a tmpfs
	// mounted on Root, and overlays keep what they add in a tmpfs on
	// Scratch. Both mounts exist only in the step's namespace, so every
	// step may use the same two directories.
	Root    string `json:"root"`
	Scratch string `json:"scratch"`
	Binds   []Bind `json:"binds"`
	// Hide are host paths the step sees empty and read-only: the run's
	// state, which only its binds expose.
	Hide []string `json:"hide,omitempty"`
	// Dir is the working directory, a path of the view; made if missing.
	Dir string `json:"dir"`
}

// Args is the command line that runs argv in spec's view through self.
// argv[0] is looked up in the view, with the PATH of the step's env.
func Args(self string, spec Spec, argv []string) ([]string, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return append([]string{self, Command, string(js), "--"}, argv...), nil
}

// Main is Command: it builds the view, enters it and execs the step in
// place, so that the step keeps the process (and process group) it was
// started as. It returns only on failure.
func Main(args []string) error {
	if len(args) < 3 || args[1] != "--" {
		return errors.New("usage: " + Command + " SPEC -- COMMAND [ARG]")
	}
	var spec Spec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("%s: spec: %w", Command, err)
	}
	argv := args[2:]
	// Namespaces belong to threads: unshare, mount and exec on this one.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	// Keep the mounts below from propagating back to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	v := &view{Spec: spec}
	if err := v.build(); err != nil {
		return err
	}
	if err := syscall.Chroot(spec.Root); err != nil {
		return fmt.Errorf("enter the step's root: %w", err)
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("working dir %s: %w", dir, err)
	}
	path, _ := stepexec.LookupEnv(os.Environ(), "PATH")
	bin, err := stepexec.LookPath(argv[0], path, dir)
	if err != nil {
		return err
	}
	return syscall.Exec(bin, argv, os.Environ())
}

// view builds a Spec's root on the host side, before chroot.
type view struct {
	Spec
	// ours are the filesystems a mount point may be made in: the root's
	// tmpfs and the overlays.
	ours     map[uint64]bool
	overlays int
}

func (v *view) build() error {
	if err := syscall.Mount("tmpfs", v.Root, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("the step's root: %w", err)
	}
	if err := syscall.Mount("tmpfs", v.Scratch, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("the step's scratch space: %w", err)
	}
	if err := v.markOurs(v.Root); err != nil {
		return err
	}
	if err := v.bindHostRoot(); err != nil {
		return err
	}
	// Parents before children: a bind inside another lands on it.
	binds := slices.Clone(v.Binds)
	slices.SortStableFunc(binds, func(a, b Bind) int { return strings.Count(a.Dst, "/") - strings.Count(b.Dst, "/") })
	for _, b := range binds {
		if err := v.bind(b); err != nil {
			return err
		}
	}
	if v.Dir != "" {
		if err := v.ensure(filepath.Join(v.Root, v.Dir), true); err != nil {
			return fmt.Errorf("working dir %s: %w", v.Dir, err)
		}
	}
	for _, h := range v.Hide {
		target := filepath.Join(v.Root, h)
		if _, err := os.Stat(target); err != nil {
			continue
		}
		if err := syscall.Mount("tmpfs", target, "tmpfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, "size=4k,mode=0755"); err != nil {
			return fmt.Errorf("hide %s: %w", h, err)
		}
	}
	return nil
}

// tektonOwn are the top-level directories of Tekton's paths: the view has
// its own, never the host's.
var tektonOwn = map[string]bool{"tekton": true, "workspace": true}

// bindHostRoot puts each entry of the host's / in the new root: a
// directory bound with what is mounted below it, a symbolic link copied
// (merged-/usr systems link /bin), a file bound.
func (v *view) bindHostRoot() error {
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if tektonOwn[e.Name()] {
			continue
		}
		src, dst := "/"+e.Name(), filepath.Join(v.Root, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			continue
		case e.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(dst, nil, 0o644); err != nil {
				return err
			}
		}
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind the host's %s: %w", src, err)
		}
	}
	return nil
}

// bind mounts b.Src at b.Dst of the view, read-only if b says so.
func (v *view) bind(b Bind) error {
	if !filepath.IsAbs(b.Dst) {
		return fmt.Errorf("mount path %q is not absolute", b.Dst)
	}
	st, err := os.Stat(b.Src)
	if err != nil {
		return fmt.Errorf("mount %s: %w", b.Dst, err)
	}
	target := filepath.Join(v.Root, b.Dst)
	if err := v.ensure(target, st.IsDir()); err != nil {
		return fmt.Errorf("mount point %s: %w", b.Dst, err)
	}
	if err := syscall.Mount(b.Src, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", b.Src, b.Dst, err)
	}
	if !b.ReadOnly {
		return nil
	}
	kept, err := keptFlags(target)
	if err != nil {
		return fmt.Errorf("make %s read-only: %w", b.Dst, err)
	}
	if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|kept, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", b.Dst, err)
	}
	return nil
}

// ensure makes the mount point p (a directory, or a file for a file
// bind). Where its nearest existing ancestor is the host's (a directory
// bound from /), that ancestor gets an overlay first, so that what is made
// lands in the scratch tmpfs and never on the host.
func (v *view) ensure(p string, dir bool) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	anc := filepath.Dir(p)
	for {
		if _, err := os.Lstat(anc); err == nil {
			break
		}
		anc = filepath.Dir(anc)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(anc, &st); err != nil {
		return err
	}
	if !v.ours[st.Dev] && !v.inWritableBind(anc) {
		if err := v.overlay(anc); err != nil {
			return err
		}
	}
	if dir {
		return os.MkdirAll(p, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o644)
}

// inWritableBind tells whether p is in one of the step's own writable
// binds (a workspace, its results): a directory made there is the step's
// to make, as the kubelet's runtime makes a workingDir in a volume.
func (v *view) inWritableBind(p string) bool {
	for _, b := range v.Binds {
		target := filepath.Join(v.Root, b.Dst)
		if !b.ReadOnly && (p == target || strings.HasPrefix(p, target+"/")) {
			return true
		}
	}
	return false
}

// overlay mounts over dir an overlay of itself whose changes go to the
// scratch tmpfs.
func (v *view) overlay(dir string) error {
	v.overlays++
	n := filepath.Join(v.Scratch, strconv.Itoa(v.overlays))
	upper, work := filepath.Join(n, "upper"), filepath.Join(n, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + escape(dir) + ",upperdir=" + escape(upper) + ",workdir=" + escape(work)
	if err := syscall.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay on %s: %w", strings.TrimPrefix(dir, v.Root), err)
	}
	return v.markOurs(dir)
}

// markOurs notes that dir's filesystem is one of the view's own.
func (v *view) markOurs(dir string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	if v.ours == nil {
		v.ours = map[uint64]bool{}
	}
	v.ours[st.Dev] = true
	return nil
}

// escape escapes what overlayfs's options give a meaning to.
func escape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`).Replace(p)
}

// statfs(2) f_flags (ST_* of <sys/statvfs.h>, not in package syscall).
const (
	stNosuid     = 0x2
	stNodev      = 0x4
	stNoexec     = 0x8
	stNoatime    = 0x400
	stNodiratime = 0x800
	stRelatime   = 0x1000
)

// keptFlags are the flags of the mount at path that a read-only remount
// must repeat: a remount sets them all anew, and in a user namespace (a
// hermetic step) the kernel refuses to clear the ones it inherited
// locked; as root, a nosuid or noexec volume stays so too.
func keptFlags(path string) (uintptr, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	var kept uintptr
	for st0, ms := range map[int64]uintptr{stNosuid: syscall.MS_NOSUID, stNodev: syscall.MS_NODEV, stNoexec: syscall.MS_NOEXEC, stNodiratime: syscall.MS_NODIRATIME} {
		if st.Flags&st0 != 0 {
			kept |= ms
		}
	}
	switch {
	case st.Flags&stNoatime != 0:
		kept |= syscall.MS_NOATIME
	case st.Flags&stRelatime != 0:
		kept |= syscall.MS_RELATIME
	default:
		kept |= syscall.MS_STRICTATIME
	}
	return kept, nil
}

// Available tells whether this process may make mount namespaces: it has
// CAP_SYS_ADMIN (root outside a container, usually).
func Available() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(status)) {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<capSysAdmin) != 0
		}
	}
	return false
}

// capSysAdmin is CAP_SYS_ADMIN's bit in /proc/self/status's CapEff.
const capSysAdmin = 21
