import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";

async function start() {
  if (import.meta.env.MODE === "mock") {
    const { installMockBackend } = await import("./mock/backend");
    installMockBackend();
  }
  mount(App, { target: document.getElementById("app")! });
}

start();
