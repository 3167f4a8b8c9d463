package supervise

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Guard watches the lab's supervisor from another process (the endpoints controller) and
// starts a new one, with the same back-off, when it dies. Before up has started the
// supervisor (no pid file yet) there is nothing to watch.
func Guard(ctx context.Context, cfg Config, log *slog.Logger) {
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	failures := 0
	var nextTry time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec, err := ReadRecord(cfg.Dir, Supervisor.Role, Supervisor.Name)
		if err != nil || rec.Alive() {
			if err == nil && time.Since(rec.Started) >= BackoffReset {
				failures = 0
			}
			nextTry = time.Time{}
			continue
		}
		now := time.Now()
		if nextTry.IsZero() {
			failures++
			nextTry = now.Add(Backoff(failures - 1))
			log.Warn("supervisor died, restarting", "restarts", rec.Restarts, "backoff", Backoff(failures-1).String())
		}
		if now.Before(nextTry) {
			continue
		}
		err = restartSupervisor(cfg)
		switch {
		case err == nil:
			nextTry = time.Time{}
			log.Info("supervisor restarted", "restarts", rec.Restarts+1)
		case errors.Is(err, ErrGone), errors.Is(err, ErrLocked):
			// down removes the lab, or up or a drill holds it: nothing to do now.
		default:
			failures++
			nextTry = now.Add(Backoff(failures - 1))
			log.Error("restart supervisor", "err", err)
		}
	}
}

func restartSupervisor(cfg Config) error {
	lk, err := TryLock(cfg.Dir)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	rec, err := ReadRecord(cfg.Dir, Supervisor.Role, Supervisor.Name)
	if err != nil || rec.Alive() {
		return nil
	}
	_, ready, err := Start(cfg.Dir, SupervisorProcess(cfg.Lab), cfg.Binary, rec.Restarts+1)
	if err != nil {
		return err
	}
	select {
	case err := <-ready:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("new supervisor not ready after 10s")
	}
}
