package process

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ReadOnlyCommand is the hidden command of the pod-runner binary
// (Options.Self) that runs a step with its workspaces mounted as Tekton
// mounts them: `SELF ReadOnlyCommand MODE SRC DST... -- ARGV...`, MODE "ro"
// or "rw". A readOnly workspace is a read-only mount in Tekton, and two
// bindings of one volume are two mounts; as root, a private mount namespace
// gives a step the same, while other tasks sharing the volume keep writing
// to it.
const ReadOnlyCommand = "_read-only-exec"

// ReadOnlyExec is ReadOnlyCommand: in a new mount namespace it bind-mounts
// each SRC at DST, read-only for "ro", then execs ARGV in place, so the step
// keeps the process (and process group) it was started as. It returns only
// on failure.
func ReadOnlyExec(args []string) error {
	sep := slices.Index(args, "--")
	if sep < 0 || sep == len(args)-1 || sep%3 != 0 {
		return errors.New("usage: " + ReadOnlyCommand + " [ro|rw SRC DST]... -- COMMAND [ARG]")
	}
	mounts, argv := args[:sep], args[sep+1:]
	// Namespaces belong to threads: unshare, mount and exec on this one.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	// Keep the mounts below from propagating back to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for i := 0; i < len(mounts); i += 3 {
		mode, src, dst := mounts[i], mounts[i+1], mounts[i+2]
		if mode != "ro" && mode != "rw" {
			return fmt.Errorf("%s: mode %q is neither ro nor rw", ReadOnlyCommand, mode)
		}
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", src, dst, err)
		}
		if mode == "ro" {
			kept, err := keptFlags(dst)
			if err != nil {
				return fmt.Errorf("make %s read-only: %w", dst, err)
			}
			if err := syscall.Mount("", dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|kept, ""); err != nil {
				return fmt.Errorf("make %s read-only: %w", dst, err)
			}
		}
	}
	// The working directory may lie under a mount just made: enter it again
	// to be on the new mounts.
	if wd, err := os.Getwd(); err == nil {
		_ = os.Chdir(wd)
	}
	return syscall.Exec(argv[0], argv, os.Environ())
}

// mount is a workspace of an attempt whose steps see it at its own mount
// point.
type mount struct {
	readOnly bool
	src, dst string
}

// canMount tells whether steps can get their own mounts: root, and the
// pod-runner binary to start them through.
func (l *Launcher) canMount() bool { return l.opts.Self != "" && hasCapSysAdmin() }

// capSysAdmin is CAP_SYS_ADMIN's bit in /proc/self/status's CapEff.
const capSysAdmin = 21

// hasCapSysAdmin tells whether this process may make mounts: root in a
// container usually may not.
func hasCapSysAdmin() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<capSysAdmin) != 0
		}
	}
	return false
}

// wrapMounts prefixes argv with the mount wrapper when the attempt mounts
// its workspaces.
func (a *attempt) wrapMounts(argv []string) []string {
	if len(a.mounts) == 0 {
		return argv
	}
	out := []string{a.l.opts.Self, ReadOnlyCommand}
	for _, m := range a.mounts {
		mode := "rw"
		if m.readOnly {
			mode = "ro"
		}
		out = append(out, mode, m.src, m.dst)
	}
	return append(append(out, "--"), argv...)
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
