package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/stepexec"
	"github.com/e7763abc/pod-runner/internal/supervisor"
)

// drainDelay bounds how long RunStep waits for the step's output pipes to
// close once its process group is gone: a process that left the group
// (setsid) may hold them open for ever.
const drainDelay = 500 * time.Millisecond

// RunStep runs one step as a host process in its own process group and waits
// for it to end. When ctx ends the group gets SIGTERM, then SIGKILL after the
// grace period.
func (a *attempt) RunStep(ctx context.Context, step *supervisor.Step) supervisor.StepExit {
	if err := ctx.Err(); err != nil {
		return supervisor.StepExit{Err: fmt.Errorf("step not started: %w", context.Cause(ctx))}
	}
	r, failed := a.start(step, stepRole)
	if failed != nil {
		return *failed
	}
	var end stepexec.Exit
	select {
	case end = <-r.waited:
	case <-ctx.Done():
		r.proc.Stop(a.l.opts.Grace)
		end = <-r.waited
	}
	return r.finish(end)
}

// role is what a process is to its task: a step, or a sidecar beside the
// steps. Each has its own directory and script files.
type role string

const (
	stepRole    role = "step"
	sidecarRole role = "sidecar"
)

// running is a started step or sidecar process and the copies of its output.
type running struct {
	name       string
	as         role
	proc       *stepexec.Process
	waited     chan stepexec.Exit // receives its end, once
	ended      chan struct{}      // closed once waited has received
	outR, errR *os.File
	copiers    *sync.WaitGroup
	files      *prepared
}

// start starts a step or sidecar as a host process in its own process
// group; it returns how it failed to start otherwise.
func (a *attempt) start(step *supervisor.Step, as role) (*running, *supervisor.StepExit) {
	fail := func(err error) (*running, *supervisor.StepExit) { return nil, &supervisor.StepExit{Err: err} }
	if err := checkName(step.Name); err != nil {
		return fail(fmt.Errorf("%s name: %w", as, err))
	}
	p, err := a.prepare(step, as)
	if err != nil {
		return fail(err)
	}
	prefix := "[" + step.Task + "/" + step.Name + "] "
	if as == sidecarRole {
		prefix = "[" + step.Task + "/sidecar-" + step.Name + "] "
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		p.closeFiles()
		return fail(fmt.Errorf("stdout pipe: %w", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		p.closeFiles()
		outR.Close()
		outW.Close()
		return fail(fmt.Errorf("stderr pipe: %w", err))
	}
	// Our own *os.File pipes: exec then starts no copying goroutine that
	// Wait would block on while a grandchild holds the pipe.
	proc, startErr := stepexec.Launch(stepexec.Spec{
		Argv: p.argv, Env: p.env, Dir: p.dir, Stdout: outW, Stderr: errW, Hermetic: step.Hermetic,
		// Tekton's entrypoint records the exit code for
		// $(steps.step-NAME.exitCode.path).
		ExitCodePath: filepath.Join(a.roleDir(step.Name, as), "exitCode"),
	})
	outW.Close()
	errW.Close()
	if startErr != nil {
		p.closeFiles()
		outR.Close()
		errR.Close()
		var he *hermetic.Error
		if errors.As(startErr, &he) {
			return fail(startErr)
		}
		return fail(fmt.Errorf("%s %q: %w", as, step.Name, startErr))
	}
	r := &running{name: step.Name, as: as, proc: proc, waited: make(chan stepexec.Exit, 1), ended: make(chan struct{}), outR: outR, errR: errR, copiers: &sync.WaitGroup{}, files: p}
	r.copiers.Add(2)
	go a.copyOutput(r.copiers, outR, prefix, p.stdout)
	go a.copyOutput(r.copiers, errR, prefix, p.stderr)
	go func() {
		r.waited <- proc.Wait()
		close(r.ended)
	}()
	return r, nil
}

// finish drains the output of a process that ended and tells how it ended.
func (r *running) finish(end stepexec.Exit) supervisor.StepExit {
	defer r.files.closeFiles()
	drained := make(chan struct{})
	go func() { r.copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainDelay):
		// Closing the read ends unblocks the copiers (pipes from os.Pipe
		// are pollable), which flush what they have.
		r.outR.Close()
		r.errR.Close()
		<-drained
	}
	r.outR.Close()
	r.errR.Close()
	exit := supervisor.StepExit{Started: end.Started, Finished: end.Finished, ExitCode: end.Code, Reason: end.Reason}
	if end.Err != nil {
		exit.Err = fmt.Errorf("%s %q: %w", r.as, r.name, end.Err)
	}
	return exit
}

// prepared is a step ready to start.
type prepared struct {
	argv []string
	env  []string
	dir  string
	// view is the mount namespace's, for a task with Tekton's paths: a
	// sidecar's exec probe runs in it too, as in its container.
	view           *mountns.Spec
	stdout, stderr *os.File // stdoutConfig / stderrConfig copies, or nil
}

func (p *prepared) closeFiles() {
	if p.stdout != nil {
		p.stdout.Close()
	}
	if p.stderr != nil {
		p.stderr.Close()
	}
}

// prepare works out the step's command line, environment, working directory
// and output files.
func (a *attempt) prepare(step *supervisor.Step, as role) (*prepared, error) {
	if err := os.MkdirAll(filepath.Join(a.roleDir(step.Name, as), "results"), 0o755); err != nil {
		return nil, fmt.Errorf("%s dir: %w", as, err)
	}
	env, err := a.l.objectEnv(step)
	if err != nil {
		return nil, err
	}
	p := &prepared{env: stepexec.MergeEnv(a.env, env)}

	// Tekton runs a step's workingDir from /workspace and creates a relative
	// (or /workspace/...) one beforehand; a container runtime creates a
	// missing absolute one. The attempt's workspace dir is our /workspace.
	p.dir = a.workspaceDir()
	if a.tektonPaths {
		// The view's /workspace; a sidecar's default is its image's, /.
		p.dir = podlayout.WorkspaceDir
		if as == sidecarRole {
			p.dir = "/"
		}
	}
	if wd := step.WorkingDir; wd != "" {
		if !filepath.IsAbs(wd) {
			wd = filepath.Join(p.dir, wd)
		}
		p.dir = filepath.Clean(wd)
	}
	var view mountns.Spec
	if a.tektonPaths {
		// mountns makes the working dir inside the view.
		if view, err = a.view(step, as, p.dir); err != nil {
			return nil, fmt.Errorf("%s %q: %w", as, step.Name, err)
		}
	} else if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("working dir: %w", err)
	}

	switch {
	case step.Script != "":
		script := step.Script
		if strings.HasPrefix(script, "#!win") {
			return nil, errors.New("a Windows script (#!win) cannot run on this host")
		}
		if !strings.HasPrefix(script, "#!") {
			// The supervisor adds Tekton's default interpreter; a file
			// without "#!" could not be executed at all.
			script = "#!/bin/sh\nset -e\n" + script
		}
		script = a.l.withShell(script)
		file := fmt.Sprintf("%s-script-%d-%s", as, step.Index, step.Name)
		path := filepath.Join(a.scriptsDir(), file)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			return nil, fmt.Errorf("write script: %w", err)
		}
		if a.tektonPaths {
			path = podlayout.ScriptsDir + "/" + file
		}
		p.argv = append([]string{path}, step.Args...)
	case len(step.Command) > 0 && a.tektonPaths:
		// Looked up in the view (mountns.Main).
		p.argv = append(append([]string{a.l.shellFor(step.Command[0])}, step.Command[1:]...), step.Args...)
	case len(step.Command) > 0:
		search, _ := stepexec.LookupEnv(p.env, "PATH")
		bin, err := stepexec.LookPath(a.l.shellFor(step.Command[0]), search, p.dir)
		if err != nil {
			return nil, err
		}
		p.argv = append(append([]string{bin}, step.Command[1:]...), step.Args...)
	default:
		return nil, fmt.Errorf("%s %q has no command or script: the entrypoint of image %q is only known in pod mode (or give it: pod-runner run --entrypoint %s=CMD)", as, step.Name, step.Image, step.Image)
	}

	stdoutPath, stderrPath := step.StdoutPath, step.StderrPath
	if a.tektonPaths {
		stdoutPath, stderrPath = viewedFile(view, stdoutPath), viewedFile(view, stderrPath)
		if p.argv, err = mountns.Args(a.l.opts.Self, view, p.argv); err != nil {
			return nil, err
		}
		// The helper starts in a host directory, and enters p.dir in the view.
		p.dir = a.dir
		p.view = &view
	}
	if p.stdout, err = stepexec.OpenOutput(stdoutPath, p.dir); err != nil {
		return nil, fmt.Errorf("stdoutConfig: %w", err)
	}
	if p.stderr, err = stepexec.OpenOutput(stderrPath, p.dir); err != nil {
		p.closeFiles()
		return nil, fmt.Errorf("stderrConfig: %w", err)
	}
	return p, nil
}

// viewedFile is the host path of a stdoutConfig/stderrConfig path of the
// view: where a bind holds it, in the bind's source; elsewhere the same
// path (the view shows the host's directories).
func viewedFile(view mountns.Spec, path string) string {
	if path == "" {
		return ""
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(view.Dir, path)
	}
	if h := hostPath(view, path); h != "" {
		return h
	}
	return path
}

// copyOutput copies one stream of a step to the log, prefixed, and to its
// stdoutConfig/stderrConfig file.
func (a *attempt) copyOutput(wg *sync.WaitGroup, r io.Reader, prefix string, file *os.File) {
	defer wg.Done()
	lw := &lineWriter{out: a.l.log, prefix: prefix}
	var w io.Writer = lw
	if file != nil {
		w = io.MultiWriter(lw, &copyFile{w: file, log: lw})
	}
	// A read error here only means the pipe was closed under us.
	_, _ = io.Copy(w, r)
	lw.Flush()
}

// withShell points a script's #!/bin/sh or #!/bin/ash line at Options.Shell.
func (l *Launcher) withShell(script string) string {
	line, rest, _ := strings.Cut(script, "\n")
	interp, args, _ := strings.Cut(strings.TrimPrefix(line, "#!"), " ")
	if sh := l.shellFor(strings.TrimSpace(interp)); sh != strings.TrimSpace(interp) {
		line = "#!" + sh
		if args != "" {
			line += " " + args
		}
		return line + "\n" + rest
	}
	return script
}
