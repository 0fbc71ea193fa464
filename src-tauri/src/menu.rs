//! The app menu: the platform's standard items (About, Hide, Quit; Edit's copy and paste,
//! which the page's text fields rely on on macOS; Window) and a View menu whose shortcuts
//! switch views. A chosen Adapt item reaches the page as a `menu` event carrying its id.

use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tauri::{AppHandle, Emitter, Runtime};

/// The View menu's items: event id, label, shortcut.
const VIEWS: [(&str, &str, &str); 5] = [
    ("view:chat", "Chat", "CmdOrCtrl+1"),
    ("view:models", "Models", "CmdOrCtrl+2"),
    ("view:datasets", "Datasets", "CmdOrCtrl+3"),
    ("view:train", "Train", "CmdOrCtrl+4"),
    ("view:runs", "Runs", "CmdOrCtrl+5"),
];

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<Menu<R>> {
    let separator = || PredefinedMenuItem::separator(app);
    let adapt = Submenu::with_items(
        app,
        "Adapt",
        true,
        &[
            &PredefinedMenuItem::about(app, Some("About Adapt"), None)?,
            &separator()?,
            &MenuItem::with_id(app, "chat:new", "New Chat", true, Some("CmdOrCtrl+N"))?,
            &separator()?,
            &PredefinedMenuItem::services(app, None)?,
            &PredefinedMenuItem::hide(app, None)?,
            &PredefinedMenuItem::hide_others(app, None)?,
            &PredefinedMenuItem::show_all(app, None)?,
            &separator()?,
            &PredefinedMenuItem::quit(app, None)?,
        ],
    )?;
    let edit = Submenu::with_items(
        app,
        "Edit",
        true,
        &[
            &PredefinedMenuItem::undo(app, None)?,
            &PredefinedMenuItem::redo(app, None)?,
            &separator()?,
            &PredefinedMenuItem::cut(app, None)?,
            &PredefinedMenuItem::copy(app, None)?,
            &PredefinedMenuItem::paste(app, None)?,
            &PredefinedMenuItem::select_all(app, None)?,
        ],
    )?;
    let view = Submenu::with_id(app, "view", "View", true)?;
    for (id, label, keys) in VIEWS {
        view.append(&MenuItem::with_id(app, id, label, true, Some(keys))?)?;
    }
    let window = Submenu::with_items(
        app,
        "Window",
        true,
        &[
            &PredefinedMenuItem::minimize(app, None)?,
            &PredefinedMenuItem::fullscreen(app, None)?,
            &separator()?,
            &PredefinedMenuItem::close_window(app, None)?,
        ],
    )?;
    Menu::with_items(app, &[&adapt, &edit, &view, &window])
}

/// Hands Adapt's own items to the page.
pub fn on_event<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    let id = event.id().as_ref();
    if id.starts_with("view:") || id.starts_with("chat:") {
        let _ = app.emit("menu", id);
    }
}
