package stepper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/e7763abc/pod-runner/proto/steppb"
)

// ControlTimeout bounds a whole Control exchange when ctx has no deadline.
const ControlTimeout = 10 * time.Second

// Control sends the running supervisor a request for the run (spec.status
// CancelledRunFinally or StoppedRunFinally) over its socket and waits for
// its answer. It is what `pod-runner control` runs in the supervisor's
// container, through pods/exec, so that the controller reaches the
// supervisor through the API server only.
func Control(ctx context.Context, socket string, action steppb.Control_Action) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ControlTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("connect to the supervisor: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	msg := &steppb.StepMessage{Kind: &steppb.StepMessage_Control{Control: &steppb.Control{Action: action}}}
	if err := WriteMsg(conn, msg); err != nil {
		return fmt.Errorf("send %s: %w", action, err)
	}
	reply := &steppb.SupervisorMessage{}
	if err := ReadMsg(bufio.NewReader(conn), reply); err != nil {
		return fmt.Errorf("answer to %s: %w", action, err)
	}
	cr := reply.GetControlReply()
	if cr == nil {
		return fmt.Errorf("answer to %s: unexpected %T", action, reply.GetKind())
	}
	if cr.GetError() != "" {
		return errors.New(cr.GetError())
	}
	return nil
}
