import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes, useNavigate } from "react-router";
import * as api from "./api";
import { LoginPage, SetupPage } from "./auth";
import { ProjectPage } from "./project";
import { ProjectsPage } from "./projects";
import "./style.css";

function App() {
  const [user, setUser] = useState<api.User | null | undefined>(undefined);
  useEffect(() => {
    api.refresh().then(setUser);
  }, []);
  if (user === undefined) return <p className="muted center">Loading…</p>;
  return (
    <Routes>
      <Route path="/setup" element={<SetupPage onDone={setUser} />} />
      <Route path="/login" element={user ? <Navigate to="/" /> : <LoginPage onDone={setUser} />} />
      <Route
        path="/*"
        element={user ? <Shell user={user} onLogout={() => setUser(null)} /> : <Navigate to="/login" />}
      />
    </Routes>
  );
}

function Shell({ user, onLogout }: { user: api.User; onLogout: () => void }) {
  const navigate = useNavigate();
  return (
    <div className="shell">
      <header>
        <strong>shard</strong>
        <span className="muted">
          {user.username} ({user.role})
        </span>
        <button
          onClick={async () => {
            await api.logout();
            onLogout();
            navigate("/login");
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Routes>
          <Route path="/" element={<ProjectsPage />} />
          <Route path="/projects/:id" element={<ProjectPage />} />
          <Route path="*" element={<p>Page not found.</p>} />
        </Routes>
      </main>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <App />
    </BrowserRouter>
  </StrictMode>,
);
