// Package procgroup starts a command as the leader of its own process group
// and stops the whole group: SIGTERM, a grace period, SIGKILL, and a wait
// until no process of the group is left.
package procgroup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillWait bounds the wait, after SIGKILL, for the last processes of a
// group to be gone.
const KillWait = 10 * time.Second

// Process is a started command that leads its own process group.
type Process struct {
	pid  int
	done chan struct{}
	err  error
}

// Start starts cmd (made with exec.Command, not yet started) as the leader
// of a new process group and reaps it when it exits.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run starts cmd in its own process group and waits for it as Wait does.
// With ctx already done it starts nothing and returns ctx.Err().
func Run(ctx context.Context, cmd *exec.Cmd, grace time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := Start(cmd)
	if err != nil {
		return err
	}
	return p.Wait(ctx, grace)
}

// Pid is the leader's process ID, which is also the group's ID.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the leader has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the leader ended, as exec.Cmd.Wait returns it; nil until Done
// is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Wait returns how the leader ended. When ctx is done first, it stops the
// group (Stop) and returns ctx.Err(), joined with Stop's error if any.
func (p *Process) Wait(ctx context.Context, grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		if err := p.Stop(grace); err != nil {
			return fmt.Errorf("%w; %w", ctx.Err(), err)
		}
		return ctx.Err()
	}
}

// Signal sends sig to every process of the group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.pid, sig)
}

// Stop sends SIGTERM to the group, gives the leader up to grace to exit,
// then kills the group (Kill). It returns an error only when processes of
// the group survive SIGKILL.
func (p *Process) Stop(grace time.Duration) error {
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	return p.Kill()
}

// Kill sends SIGKILL to the group, waits for the leader, and waits (up to
// KillWait) until no live process of the group is left: members that
// ignored SIGTERM or outlived the leader go with it.
func (p *Process) Kill() error {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
	deadline := time.Now().Add(KillWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		left := Members(p.pid)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of process group %d survived SIGKILL", left, p.pid)
		}
		// Members forked since the last signal.
		_ = p.Signal(syscall.SIGKILL)
		<-tick.C // bounded by deadline: the kernel tears the group down
	}
}

// Members lists the live (not zombie) processes of process group pgid,
// read from /proc.
func Members(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, group, ok := stat(pid); ok && state != "Z" && state != "X" && group == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// stat reads the state and process group of pid from /proc/pid/stat.
func stat(pid int) (state string, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return f[0], pgrp, err == nil
}
