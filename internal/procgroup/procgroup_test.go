package procgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ignoresTerm is a shell that ignores SIGTERM (and so do the two
// grandchildren it starts), prints their PIDs and "ready", and waits.
const ignoresTerm = `trap '' TERM
sleep 1000 & echo $!
sleep 1000 & echo $!
echo ready
wait`

// script makes the command for a /bin/sh script whose stdout the test
// reads: it returns the command and a function that reads the PIDs the
// script prints up to its "ready" line (bounded by a read deadline).
func script(t *testing.T, body string) (*exec.Cmd, func() ([]int, error)) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	cmd := exec.Command("/bin/sh", "-c", body)
	cmd.Stdout = w
	ready := func() ([]int, error) {
		if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return nil, err
		}
		var pids []int
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == "ready" {
				return pids, nil
			}
			pid, err := strconv.Atoi(sc.Text())
			if err != nil {
				return nil, err
			}
			pids = append(pids, pid)
		}
		return nil, fmt.Errorf("the script never printed ready: %v", sc.Err())
	}
	return cmd, ready
}

// start starts a script in its own group and returns it with the PIDs of
// the leader and of the grandchildren it printed.
func start(t *testing.T, body string) (*Process, []int) {
	t.Helper()
	cmd, ready := script(t, body)
	p, err := Start(cmd)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	pids, err := ready()
	require.NoError(t, err)
	return p, append([]int{p.Pid()}, pids...)
}

// live returns those of pids that are still running (not gone, not zombies),
// asking the kernel itself.
func live(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			continue // ESRCH: gone
		}
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); f[0] != "Z" && f[0] != "X" {
			out = append(out, pid)
		}
	}
	return out
}

func signalOf(t *testing.T, err error) syscall.Signal {
	t.Helper()
	var xe *exec.ExitError
	require.ErrorAs(t, err, &xe)
	ws, ok := xe.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "the leader exited with %v, not by a signal", err)
	return ws.Signal()
}

func TestStartJoinsOwnGroup(t *testing.T) {
	p, pids := start(t, ignoresTerm)
	require.Len(t, pids, 3)
	assert.ElementsMatch(t, pids, Members(p.Pid()), "the leader and its grandchildren share the group")
	assert.NotEqual(t, syscall.Getpgrp(), p.Pid(), "not this process's group")
	select {
	case <-p.Done():
		t.Fatal("the leader exited early")
	default:
	}
	assert.NoError(t, p.Err(), "no exit error before the leader exits")
}

func TestStopKillsWhatIgnoresTerm(t *testing.T) {
	p, pids := start(t, ignoresTerm)
	const grace = 300 * time.Millisecond
	begin := time.Now()
	require.NoError(t, p.Stop(grace))
	assert.GreaterOrEqual(t, time.Since(begin), grace, "SIGTERM was ignored: the grace period passed before SIGKILL")
	assert.Empty(t, live(pids), "no process of the group is left")
	assert.Empty(t, Members(p.Pid()))
	assert.Equal(t, syscall.SIGKILL, signalOf(t, p.Err()))
	require.NoError(t, p.Stop(grace), "stopping again is harmless")
}

func TestStopEndsOnTerm(t *testing.T) {
	p, pids := start(t, "sleep 1000 & echo $!\necho ready\nwait")
	const grace = 30 * time.Second
	begin := time.Now()
	require.NoError(t, p.Stop(grace))
	assert.Less(t, time.Since(begin), grace, "a group that obeys SIGTERM is not held for the grace period")
	assert.Empty(t, live(pids))
	assert.Equal(t, syscall.SIGTERM, signalOf(t, p.Err()))
}

func TestKillTakesMembersThatOutliveTheLeader(t *testing.T) {
	p, pids := start(t, "trap '' TERM\nsleep 1000 & echo $!\necho ready")
	<-p.Done() // the leader exits at once; its grandchild stays
	require.NoError(t, p.Err())
	require.Equal(t, pids[1:], live(pids), "the grandchild outlived the leader")
	require.NoError(t, p.Stop(time.Minute))
	assert.Empty(t, live(pids))
}

func TestRun(t *testing.T) {
	t.Run("exit status", func(t *testing.T) {
		err := Run(t.Context(), exec.Command("/bin/sh", "-c", "exit 3"), time.Second)
		var xe *exec.ExitError
		require.ErrorAs(t, err, &xe)
		assert.Equal(t, 3, xe.ExitCode())
	})
	t.Run("success", func(t *testing.T) {
		assert.NoError(t, Run(t.Context(), exec.Command("/bin/true"), time.Second))
	})
	t.Run("not found", func(t *testing.T) {
		err := Run(t.Context(), exec.Command("/nonexistent/program"), time.Second)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("cancelled before the start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		cmd := exec.Command("/bin/true")
		assert.Equal(t, context.Canceled, Run(ctx, cmd, time.Second))
		assert.Nil(t, cmd.Process, "nothing was started")
	})
	t.Run("cancelled", func(t *testing.T) {
		cmd, ready := script(t, ignoresTerm)
		ctx, cancel := context.WithCancel(t.Context())
		pids := make(chan []int, 1)
		go func() {
			defer cancel()
			got, err := ready()
			assert.NoError(t, err)
			pids <- got
		}()
		err := Run(ctx, cmd, 200*time.Millisecond)
		assert.Equal(t, context.Canceled, err)
		got := <-pids
		require.Len(t, got, 2)
		assert.Empty(t, live(got), "cancelling stops the whole group")
	})
}

func TestWaitAfterExit(t *testing.T) {
	p, _ := start(t, "echo ready; exit 5")
	<-p.Done()
	err := p.Wait(t.Context(), time.Second)
	var xe *exec.ExitError
	require.True(t, errors.As(err, &xe))
	assert.Equal(t, 5, xe.ExitCode())
}
