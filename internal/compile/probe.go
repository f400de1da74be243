package compile

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// sidecarProbes converts a sidecar's readinessProbe and startupProbe for
// the supervisor, which runs them (internal/probe) in place of the
// kubelet. A livenessProbe is not carried: it never holds the steps back.
func sidecarProbes(s *v1.Sidecar, at where) (readiness, startup *planpb.Probe, err error) {
	if readiness, err = convertProbe(s.ReadinessProbe, s.Ports, at, "readinessProbe", false); err != nil {
		return nil, nil, err
	}
	if startup, err = convertProbe(s.StartupProbe, s.Ports, at, "startupProbe", true); err != nil {
		return nil, nil, err
	}
	return readiness, startup, nil
}

// convertProbe is a corev1.Probe as the Plan carries it: one action, a named
// port looked up in the container's ports as the kubelet looks it up, and
// the API server's defaults applied. What the API server would refuse in
// the Pod Tekton creates is refused here, naming the field.
func convertProbe(p *corev1.Probe, ports []corev1.ContainerPort, at where, field string, startup bool) (*planpb.Probe, error) {
	if p == nil {
		return nil, nil
	}
	out := &planpb.Probe{
		InitialDelaySeconds: p.InitialDelaySeconds, TimeoutSeconds: p.TimeoutSeconds, PeriodSeconds: p.PeriodSeconds,
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold,
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold},
	} {
		if f.v < 0 {
			return nil, at.errorf(field+"."+f.name, "must be greater than or equal to 0, not %d", f.v)
		}
	}
	// SetDefaults_Probe.
	if out.TimeoutSeconds == 0 {
		out.TimeoutSeconds = 1
	}
	if out.PeriodSeconds == 0 {
		out.PeriodSeconds = 10
	}
	if out.SuccessThreshold == 0 {
		out.SuccessThreshold = 1
	}
	if out.FailureThreshold == 0 {
		out.FailureThreshold = 3
	}
	if startup && out.SuccessThreshold != 1 {
		return nil, at.errorf(field+".successThreshold", "must be 1 for a startupProbe, not %d", out.SuccessThreshold)
	}

	var actions []string
	h := p.ProbeHandler
	if h.Exec != nil {
		actions = append(actions, "exec")
		if len(h.Exec.Command) == 0 {
			return nil, at.errorf(field+".exec.command", "an exec probe needs a command")
		}
		out.Action = &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: h.Exec.Command}}
	}
	if h.HTTPGet != nil {
		actions = append(actions, "httpGet")
		a, err := httpGetAction(h.HTTPGet, ports, at, field+".httpGet")
		if err != nil {
			return nil, err
		}
		out.Action = &planpb.Probe_HttpGet{HttpGet: a}
	}
	if h.TCPSocket != nil {
		actions = append(actions, "tcpSocket")
		port, err := probePort(h.TCPSocket.Port, ports, at, field+".tcpSocket.port")
		if err != nil {
			return nil, err
		}
		out.Action = &planpb.Probe_TcpSocket{TcpSocket: &planpb.TCPSocketAction{Host: h.TCPSocket.Host, Port: port}}
	}
	if h.GRPC != nil {
		actions = append(actions, "grpc")
		if h.GRPC.Port < 1 || h.GRPC.Port > 65535 {
			return nil, at.errorf(field+".grpc.port", "must be between 1 and 65535, not %d", h.GRPC.Port)
		}
		a := &planpb.GRPCAction{Port: h.GRPC.Port}
		if h.GRPC.Service != nil {
			a.Service = *h.GRPC.Service
		}
		out.Action = &planpb.Probe_Grpc{Grpc: a}
	}
	switch len(actions) {
	case 0:
		return nil, at.errorf(field, "a probe needs one of exec, httpGet, tcpSocket or grpc")
	case 1:
		return out, nil
	default:
		return nil, at.errorf(field, "a probe may have only one of exec, httpGet, tcpSocket or grpc, not %s", strings.Join(actions, " and "))
	}
}

func httpGetAction(g *corev1.HTTPGetAction, ports []corev1.ContainerPort, at where, field string) (*planpb.HTTPGetAction, error) {
	port, err := probePort(g.Port, ports, at, field+".port")
	if err != nil {
		return nil, err
	}
	a := &planpb.HTTPGetAction{Scheme: string(g.Scheme), Host: g.Host, Port: port, Path: g.Path}
	// SetDefaults_HTTPGetAction.
	if a.Scheme == "" {
		a.Scheme = string(corev1.URISchemeHTTP)
	}
	if a.Path == "" {
		a.Path = "/"
	}
	if a.Scheme != string(corev1.URISchemeHTTP) && a.Scheme != string(corev1.URISchemeHTTPS) {
		return nil, at.errorf(field+".scheme", "must be HTTP or HTTPS, not %q", a.Scheme)
	}
	for i, h := range g.HTTPHeaders {
		if h.Name == "" {
			return nil, at.errorf(field+".httpHeaders["+strconv.Itoa(i)+"].name", "a header needs a name")
		}
		a.Headers = append(a.Headers, &planpb.HTTPHeader{Name: h.Name, Value: h.Value})
	}
	return a, nil
}

// probePort is the port number a probe's port means, as the kubelet
// resolves it (ResolveContainerPort): a number, or the name of one of the
// container's ports (else a number written as a string).
func probePort(p intstr.IntOrString, ports []corev1.ContainerPort, at where, field string) (int32, error) {
	n := p.IntVal
	if p.Type == intstr.String {
		found := false
		for _, cp := range ports {
			if cp.Name != "" && cp.Name == p.StrVal {
				n, found = cp.ContainerPort, true
				break
			}
		}
		if !found {
			v, err := strconv.Atoi(p.StrVal)
			if err != nil {
				var names []string
				for _, cp := range ports {
					if cp.Name != "" {
						names = append(names, strconv.Quote(cp.Name))
					}
				}
				known := "the sidecar names no port"
				if len(names) > 0 {
					known = "the sidecar's ports are named " + strings.Join(names, ", ")
				}
				return 0, at.errorf(field, "port %q is not the name of one of the sidecar's ports (%s)", p.StrVal, known)
			}
			n = int32(min(max(v, -1), 1<<16))
		}
	}
	if n < 1 || n > 65535 {
		return 0, at.errorf(field, "must be between 1 and 65535, not %s", p.String())
	}
	return n, nil
}
