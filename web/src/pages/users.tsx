// Admin: users — create, change role, remove.
import { useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, ConfirmDialog, Dialog, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

export default function UsersPage({ me }: { me: api.User }) {
  const [users, setUsers] = useState<api.User[] | null>(null);
  const [error, setError] = useState("");
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<api.User | null>(null);
  const toast = useToast();
  const reload = () => api.listUsers().then(setUsers, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, []);
  return (
    <section>
      <div className="page-head">
        <h1>Users</h1>
        <button className="btn" onClick={() => setAdding(true)}>
          Add user
        </button>
      </div>
      <Alert>{error}</Alert>
      {users && (
        <table className="table" aria-label="Users">
          <thead>
            <tr>
              <th>Username</th>
              <th>Role</th>
              <th>Since</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id} data-testid={`user-${u.username}`}>
                <td data-label="Username">
                  {u.username} {u.id === me.id && <span className="muted small">(you)</span>}
                </td>
                <td data-label="Role">
                  <select
                    aria-label={`Role of ${u.username}`}
                    value={u.role}
                    onChange={async (e) => {
                      const role = e.target.value;
                      setError("");
                      try {
                        await api.setRole(u.id, role);
                        toast(`${u.username} is now ${role}`, "success");
                      } catch (err) {
                        setError(errorText(err));
                      }
                      await reload();
                    }}
                  >
                    <option value="member">member</option>
                    <option value="admin">admin</option>
                  </select>
                </td>
                <td data-label="Since">
                  <Ago at={u.created_at} />
                </td>
                <td className="actions">
                  <button className="btn danger small" disabled={u.id === me.id} onClick={() => setRemoving(u)}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <AddUser
        open={adding}
        onClose={() => setAdding(false)}
        onAdded={(u) => {
          setAdding(false);
          toast(`${u.username} added`, "success");
          reload();
        }}
      />
      <ConfirmDialog
        open={removing !== null}
        onClose={() => setRemoving(null)}
        title={`Remove ${removing?.username}?`}
        word={removing?.username ?? ""}
        action="Remove user"
        onConfirm={async () => {
          await api.deleteUser(removing!.id);
          toast(`${removing!.username} removed`, "success");
          await reload();
        }}
      >
        <p>They are signed out everywhere and their API tokens stop working.</p>
      </ConfirmDialog>
    </section>
  );
}

function AddUser({ open, onClose, onAdded }: { open: boolean; onClose: () => void; onAdded: (u: api.User) => void }) {
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  return (
    <Dialog open={open} onClose={onClose} title="Add user">
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget);
          setErrors(noErrors);
          try {
            onAdded(await api.createUser(String(data.get("username")), String(data.get("password")), String(data.get("role"))));
          } catch (err) {
            setErrors(formErrors(err));
          }
        }}
      >
        <Field label="Username" name="username" autoComplete="off" required error={errors.fields.username} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required hint="8 characters or more" error={errors.fields.password} />
        <div className="field">
          <label htmlFor="new-user-role">Role</label>
          <select id="new-user-role" name="role" defaultValue="member">
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <Alert>{errors.message}</Alert>
        <div className="form-actions">
          <button type="button" className="btn secondary" onClick={onClose}>
            Cancel
          </button>
          <button className="btn">Add user</button>
        </div>
      </form>
    </Dialog>
  );
}
