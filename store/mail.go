package store

import (
	"context"
	"time"
)

// Mail is a notification e-mail waiting in the outbox to be sent to one
// recipient.
type Mail struct {
	ID        int64
	ProjectID int64
	To        string
	Subject   string
	Body      string
	Attempts  int // failed so far
	NextAt    time.Time
	LastError string
	CreatedAt time.Time
}

// EnqueueMail puts one mail per recipient in the outbox, due at once, all
// or none. It returns ErrInvalid for a recipient that is empty.
func (db *DB) EnqueueMail(ctx context.Context, projectID int64, to []string, subject, body string) error {
	for _, r := range to {
		if r == "" {
			return invalid("a mail recipient is empty")
		}
	}
	return db.writeTx(ctx, func(tx txn) error {
		now := db.nowMS()
		for _, r := range to {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mail_outbox (project_id, recipient, subject, body, next_attempt_at, created_at)
				VALUES (?, ?, ?, ?, ?, ?)`, projectID, r, subject, body, now, now); err != nil {
				return wrap("enqueue mail", err)
			}
		}
		return nil
	})
}

func scanMail(row scanner) (Mail, error) {
	var m Mail
	err := row.Scan(&m.ID, &m.ProjectID, &m.To, &m.Subject, &m.Body, &m.Attempts, msTime{&m.NextAt}, &m.LastError, msTime{&m.CreatedAt})
	return m, err
}

// DueMail returns up to limit mails due by now, the longest due first.
func (db *DB) DueMail(ctx context.Context, now time.Time, limit int) ([]Mail, error) {
	return queryAll(ctx, db.read, "list due mail", scanMail, `SELECT id, project_id, recipient, subject, body, attempts,
		next_attempt_at, last_error, created_at FROM mail_outbox WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
		now.UnixMilli(), limit)
}

// NextMailDue returns when the next mail is due; ok is false when the
// outbox is empty.
func (db *DB) NextMailDue(ctx context.Context) (next time.Time, ok bool, err error) {
	return db.nextDue(ctx, "next mail due", `SELECT MIN(next_attempt_at) FROM mail_outbox`)
}

// MailDone removes a mail from the outbox: it was sent, or given up.
func (db *DB) MailDone(ctx context.Context, id int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE id = ?`, id)
		return wrap("remove mail", err)
	})
}

// MailFailed records a failed attempt to send a mail, to be tried again at
// next. A mail removed meanwhile (its project deleted) is no error.
func (db *DB) MailFailed(ctx context.Context, id int64, next time.Time, lastErr string) error {
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
			WHERE id = ?`, lastErr, next.UnixMilli(), id)
		return wrap("record mail failure", err)
	})
}
