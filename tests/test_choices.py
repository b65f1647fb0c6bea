"""The pending selection: a button below a picker makes the picker show what it created, from
the next run on, without touching the instantiated widget (StreamlitWidgetAlreadyInstantiatedError)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _page():
    import streamlit as st

    from dashboard import choices
    from dashboard.feedback import flash, show_flashes

    items = st.session_state.setdefault("items", ["a", "b"])
    choices.apply_selection("picked", items)
    st.selectbox("Item", items, key="picked")
    show_flashes("added")
    if st.button("Add"):
        items.append(f"new{len(items)}")
        choices.select_next("picked", items[-1])
        flash("added", f"Added {items[-1]}.")
        st.rerun()
    if st.button("Add a vanished one"):
        choices.select_next("picked", "gone")
        st.rerun()


def test_what_a_button_adds_is_selected_and_said_once():
    app = AppTest.from_function(_page).run()
    assert app.selectbox(key="picked").value == "a"
    app.button[0].click().run()
    assert not app.exception
    assert app.selectbox(key="picked").value == "new2"
    assert [m.value for m in app.success] == ["Added new2."]
    app.run()
    assert app.selectbox(key="picked").value == "new2" and not app.success  # said once
    app.button[1].click().run()
    assert not app.exception and app.selectbox(key="picked").value == "new2"  # not an option: unchanged
