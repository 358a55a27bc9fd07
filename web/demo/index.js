// Carry this page's fragment (token, restaurant) over to the screens.
if (location.hash) for (const a of document.querySelectorAll('a.card')) a.href += location.hash;
